from django.urls import path

from piaowu.web import views, views_tickets

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
    path("checkout/<str:hold_id>/", views.checkout, name="checkout"),
    path("orders/", views.my_orders, name="orders"),
    path("orders/lookup/", views.order_lookup_view, name="order_lookup"),
    path("orders/<str:public_id>/", views.order_detail, name="order"),
    path("orders/<str:public_id>/pay/", views.order_pay, name="order_pay"),
    path("orders/<str:public_id>/cancel/", views.order_cancel_view, name="order_cancel"),
    path("orders/<str:public_id>/tickets/", views_tickets.order_tickets, name="order_tickets"),
    path(
        "orders/<str:public_id>/tickets.ics",
        views_tickets.order_tickets_ics,
        name="order_tickets_ics",
    ),
    path(
        "orders/<str:public_id>/tickets.pdf",
        views_tickets.order_tickets_pdf,
        name="order_tickets_pdf",
    ),
    path("redeem/", views_tickets.redeem, name="redeem"),
]
