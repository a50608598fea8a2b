from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TicketsConfig(AppConfig):
    name = "piaowu.tickets"
    label = "tickets"
    verbose_name = _("Tickets")

    def ready(self) -> None:
        # Orders cannot import tickets (tickets sits outside orders); the order-paid workflow
        # calls the hook registered here inside the transaction that makes an order paid.
        from piaowu.orders.services import on_order_paid
        from piaowu.tickets.services import tickets_issue_for_order

        on_order_paid(tickets_issue_for_order)
