"""Staff pages outside the admin: the gate scanner and ticket printing."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("gate/", include("piaowu.console.gate_urls")),
    path("print/", include("piaowu.console.print_urls")),
]
