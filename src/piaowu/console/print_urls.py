"""Console: ticket printing pages (`/console/print/…`, namespace "print")."""

from __future__ import annotations

from django.urls import URLPattern, path

from piaowu.console import views_print

app_name = "print"
urlpatterns: list[URLPattern] = [
    path("", views_print.print_index, name="index"),
    path("orders/<str:public_id>/", views_print.print_order, name="order"),
    path("tickets/<str:public_id>/prints/", views_print.print_ticket, name="ticket"),
]
