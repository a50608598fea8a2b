"""Console: the gate scanner (`/console/gate/`) and a session's check-in dashboard."""

from __future__ import annotations

from django.urls import path

from piaowu.console import views_gate

app_name = "gate"
urlpatterns = [
    path("", views_gate.picker, name="picker"),
    path("scan/", views_gate.scanner, name="scanner"),
    path("sessions/<str:session_id>/", views_gate.dashboard, name="dashboard"),
    path(
        "sessions/<str:session_id>/counts.json",
        views_gate.dashboard_counts,
        name="dashboard_counts",
    ),
]
