from django.http import HttpRequest, HttpResponse
from django.urls import path

app_name = "web"


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Piaowu")


urlpatterns = [path("", home, name="home"), path("login/", home, name="login")]
