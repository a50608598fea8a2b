from django.urls import path

from piaowu.web import views

app_name = "web"

urlpatterns = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
    path("events/<str:public_id>/", views.event_detail, name="event"),
    path("sessions/<str:public_id>/", views.session_detail, name="session"),
    path("venues/<str:public_id>/", views.venue_detail, name="venue"),
    path("accounts/login/", views.WebLoginView.as_view(), name="login"),
    path("accounts/logout/", views.WebLogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
]
