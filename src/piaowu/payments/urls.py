from django.urls import path

from piaowu.payments import views

app_name = "payments"

urlpatterns = [
    path("sandbox/<str:transaction_id>/", views.sandbox_page, name="sandbox"),
    path(
        "sandbox/<str:transaction_id>/<str:action>/",
        views.sandbox_action,
        name="sandbox_action",
    ),
]
