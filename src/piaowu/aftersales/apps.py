from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AftersalesConfig(AppConfig):
    name = "piaowu.aftersales"
    verbose_name = _("After-sales")

    def ready(self) -> None:
        # An exchange into dearer tickets completes in the transaction that makes its new
        # order paid (orders cannot import aftersales, so the hook is registered here).
        from piaowu.aftersales.services.exchanges import exchange_on_order_paid
        from piaowu.orders.services import on_order_paid

        on_order_paid(exchange_on_order_paid)
        # A paid waitlist deposit queues its entry; a paid offer's order fulfils its entry.
        from piaowu.aftersales.services.waitlist import waitlist_on_order_paid

        on_order_paid(waitlist_on_order_paid)
        # Returned seats go to the waitlist first, right after the commit that returned them
        # (the periodic jobs catch what this misses, e.g. holds that simply expired).
        from piaowu.aftersales.services.waitlist import waitlist_serve_session
        from piaowu.inventory.services import on_admissions_returned

        on_admissions_returned(waitlist_serve_session)
