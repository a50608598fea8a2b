from django.urls import path

from piaowu.web import (
    views,
    views_cases,
    views_exchanges,
    views_refunds,
    views_security,
    views_tickets,
    views_transfers,
    views_waitlist,
)

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
    path("accounts/two-factor/", views_security.two_factor, name="two_factor"),
    path(
        "accounts/password/",
        views_security.WebPasswordChangeView.as_view(),
        name="password_change",
    ),
    path("checkout/<str:hold_id>/", views.checkout, name="checkout"),
    path("orders/", views.my_orders, name="orders"),
    path("orders/lookup/", views.order_lookup_view, name="order_lookup"),
    path("orders/<str:public_id>/", views.order_detail, name="order"),
    path("orders/<str:public_id>/pay/", views.order_pay, name="order_pay"),
    path("orders/<str:public_id>/cancel/", views.order_cancel_view, name="order_cancel"),
    path("orders/<str:public_id>/exchange/", views_exchanges.exchange_page, name="exchange"),
    path(
        "orders/<str:public_id>/exchange/confirm/",
        views_exchanges.exchange_confirm,
        name="exchange_confirm",
    ),
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
    path("orders/<str:public_id>/refund/", views_refunds.order_refund, name="order_refund"),
    path("refunds/<str:public_id>/", views_refunds.refund_detail, name="refund"),
    path("tickets/", views_transfers.my_tickets, name="my_tickets"),
    path("tickets/<str:public_id>/", views_transfers.ticket_page, name="ticket"),
    path(
        "tickets/<str:public_id>/transfer/",
        views_transfers.ticket_transfer,
        name="ticket_transfer",
    ),
    path(
        "transfers/<str:public_id>/cancel/",
        views_transfers.transfer_cancel_view,
        name="transfer_cancel",
    ),
    path("transfers/<str:code>/", views_transfers.transfer_accept_view, name="transfer_accept"),
    path("help/", views_cases.help_page, name="help"),
    path("help/cases/", views_cases.my_cases, name="cases"),
    path("help/cases/new/", views_cases.case_new, name="case_new"),
    path("help/cases/<str:public_id>/", views_cases.case_detail, name="case"),
    path("help/cases/<str:public_id>/message/", views_cases.case_write, name="case_write"),
    path("help/cases/<str:public_id>/close/", views_cases.case_close, name="case_close"),
    path("help/cases/<str:public_id>/rate/", views_cases.case_rate_view, name="case_rate"),
    path(
        "sessions/<str:public_id>/waitlist/",
        views_waitlist.waitlist_join_view,
        name="waitlist_join",
    ),
    path("waitlist/", views_waitlist.my_waitlist, name="waitlist"),
    path(
        "waitlist/<str:public_id>/cancel/",
        views_waitlist.waitlist_cancel_view,
        name="waitlist_cancel",
    ),
    path(
        "waitlist/<str:public_id>/checkout/",
        views_waitlist.waitlist_checkout,
        name="waitlist_checkout",
    ),
]
