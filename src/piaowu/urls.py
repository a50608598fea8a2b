from django.contrib import admin
from django.urls import include, path

from piaowu.api.urls import api

admin.site.site_header = "Piaowu 票务"
admin.site.site_title = "Piaowu"

urlpatterns = [
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("payments/", include("piaowu.payments.urls")),
    path("console/", include("piaowu.console.urls")),
    path("", include("piaowu.web.urls")),
]
