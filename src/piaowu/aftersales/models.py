"""After-sales: refund rules, refunds, exchanges, session cancellations and reschedules, the
waitlist, ticket transfers and customer-service cases.

Rows here change only through `aftersales.services`. Every state change of a refund, exchange,
waitlist entry, transfer or case appends a history row; money moves are `payments.LedgerEntry`
rows written by the services that move the money.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import Event, PriceTier, SalesChannel, Session
from piaowu.core.ids import new_code
from piaowu.core.models import PublicIdModel, TimestampedModel
from piaowu.orders.models import Order
from piaowu.payments.models import Payment
from piaowu.tickets.models import Ticket

# --- Refund rules (AFT-1) ----------------------------------------------------------------------


class RefundPolicy(TimestampedModel):
    """The refund rule of an event (`session` empty) or of one session (overrides the event's).

    A ticket may be refunded while the time left before the session starts is at least the
    `hours_before` of one of the policy's tiers; the tier with the largest `hours_before` that
    still applies sets the fee. Without any applicable tier (or without a policy at all) a
    customer cannot refund; staff can, on the customer's behalf, with a reason.
    """

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    session = models.OneToOneField(
        Session,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("Leave empty for the rule of the whole event."),
    )
    minimum_fee = models.DecimalField(
        _("minimum fee per ticket"), max_digits=12, decimal_places=2, default=Decimal("0")
    )
    needs_approval = models.BooleanField(
        _("needs staff approval"),
        default=False,
        help_text=_("Refund requests wait for a staff member instead of being approved at once."),
    )
    channels = models.ManyToManyField(
        SalesChannel,
        blank=True,
        related_name="+",
        verbose_name=_("refundable channels"),
        help_text=_("Orders of these channels may be refunded by the customer; empty: all."),
    )
    exchanges_allowed = models.BooleanField(_("exchanges allowed"), default=True)
    exchange_fee_percent = models.DecimalField(
        _("exchange fee %"), max_digits=5, decimal_places=2, default=Decimal("0")
    )

    class Meta:
        verbose_name = _("refund rule")
        verbose_name_plural = _("refund rules")
        constraints = [
            models.UniqueConstraint(
                fields=["event"],
                condition=Q(session__isnull=True),
                name="refundpolicy_one_per_event",
            ),
            models.CheckConstraint(
                condition=Q(minimum_fee__gte=0), name="refundpolicy_minimum_fee_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(exchange_fee_percent__gte=0) & Q(exchange_fee_percent__lte=100),
                name="refundpolicy_exchange_fee_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} / {self.session or '*'}"


class RefundTier(models.Model):
    policy = models.ForeignKey(RefundPolicy, on_delete=models.CASCADE, related_name="tiers")
    hours_before = models.PositiveIntegerField(
        _("hours before the start (at least)"),
        help_text=_("This fee applies while at least this many hours are left."),
    )
    fee_percent = models.DecimalField(_("fee %"), max_digits=5, decimal_places=2)

    class Meta:
        verbose_name = _("refund tier")
        verbose_name_plural = _("refund tiers")
        ordering = ["-hours_before"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "hours_before"], name="refundtier_unique"),
            models.CheckConstraint(
                condition=Q(fee_percent__gte=0) & Q(fee_percent__lte=100),
                name="refundtier_fee_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return f"≥ {self.hours_before} h: {self.fee_percent} %"


# --- Refunds (AFT-2) ---------------------------------------------------------------------------


def new_refund_number() -> str:
    return "R" + new_code(11)


class Refund(PublicIdModel, TimestampedModel):
    """Money going back for some or all tickets of one order, through the payment that paid it.

    `number` is the refund request number the provider sees: asking the provider again with the
    same number refunds once. The amount is reserved on the payment (`Payment.refunded_amount`,
    which the database keeps ≤ the captured amount) when the refund is approved.
    """

    class State(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        APPROVED = "approved", _("Approved")
        PROCESSING = "processing", _("Processing")
        SUCCEEDED = "succeeded", _("Refunded")
        FAILED = "failed", _("Failed")  # gave up retrying; staff were alerted and can retry
        REJECTED = "rejected", _("Rejected")

    class Kind(models.TextChoices):
        CUSTOMER = "customer", _("Customer request")
        STAFF = "staff", _("By staff on the customer's behalf")
        CANCELLATION = "cancellation", _("Session cancelled")
        EXCHANGE = "exchange", _("Exchange difference")
        WAITLIST = "waitlist", _("Unfulfilled waitlist")

    number = models.CharField(
        _("refund number"), max_length=16, unique=True, default=new_refund_number, editable=False
    )
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.REQUESTED
    )
    gross_amount = models.DecimalField(_("ticket value"), max_digits=12, decimal_places=2)
    fee_amount = models.DecimalField(_("fee"), max_digits=12, decimal_places=2)
    amount = models.DecimalField(_("refund amount"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    attempts = models.PositiveIntegerField(_("provider attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    provider_refund_id = models.CharField(_("provider refund id"), max_length=64, blank=True)
    succeeded_at = models.DateTimeField(_("refunded at"), null=True, blank=True)

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    state__in=[
                        "requested",
                        "approved",
                        "processing",
                        "succeeded",
                        "failed",
                        "rejected",
                    ]
                ),
                name="refund_state_valid",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="refund_amount_not_negative"),
            models.CheckConstraint(condition=Q(fee_amount__gte=0), name="refund_fee_not_negative"),
            models.CheckConstraint(
                condition=Q(amount=models.F("gross_amount") - models.F("fee_amount")),
                name="refund_amount_is_gross_minus_fee",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="refund_due_idx"),
        ]

    def __str__(self) -> str:
        return self.number


class RefundItem(models.Model):
    """One ticket given back by a refund. A ticket is in at most one live refund: the partial
    unique index on `ticket` where `live` refuses a second request for it, also under
    concurrency; a rejected refund sets `live` false so the ticket can be asked for again."""

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="items")
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="refund_items")
    gross_amount = models.DecimalField(max_digits=12, decimal_places=2)
    fee_amount = models.DecimalField(max_digits=12, decimal_places=2)
    live = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("refunded ticket")
        verbose_name_plural = _("refunded tickets")
        constraints = [
            models.UniqueConstraint(
                fields=["ticket"], condition=Q(live=True), name="refunditem_one_live_per_ticket"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.refund_id}: {self.ticket_id}"


class RefundHistory(models.Model):
    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="history")
    from_state = models.CharField(max_length=10, blank=True)
    to_state = models.CharField(max_length=10)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField()

    class Meta:
        verbose_name = _("refund history entry")
        verbose_name_plural = _("refund history")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state or '∅'} → {self.to_state}"


# --- Exchanges (AFT-3) -------------------------------------------------------------------------


class Exchange(PublicIdModel, TimestampedModel):
    """Tickets of one order moved to another session or tier of the same event.

    The new seats are held first; `to_order` is created from that hold. When the new tickets
    cost more (plus the fee) the new order awaits payment of the difference and the exchange
    completes when it is paid; otherwise it completes at once and any difference is refunded.
    Completing releases the old seats, voids the old tickets and issues new ones in one
    transaction.
    """

    class State(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", _("Awaiting payment of the difference")
        COMPLETED = "completed", _("Completed")
        ABANDONED = "abandoned", _("Abandoned")

    from_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="exchanges_out")
    to_order = models.OneToOneField(
        Order, on_delete=models.PROTECT, related_name="exchange_in", null=True, blank=True
    )
    state = models.CharField(_("state"), max_length=20, choices=State.choices)
    old_value = models.DecimalField(_("value of the old tickets"), max_digits=12, decimal_places=2)
    new_value = models.DecimalField(_("value of the new tickets"), max_digits=12, decimal_places=2)
    fee_amount = models.DecimalField(_("fee"), max_digits=12, decimal_places=2)
    difference = models.DecimalField(_("to pay (+) or refund (−)"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    refund = models.OneToOneField(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="exchange"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("exchange")
        verbose_name_plural = _("exchanges")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.public_id


class ExchangeItem(models.Model):
    """An old ticket given up by an exchange. Like refund items, a ticket is in at most one
    live exchange (or refund: services check both)."""

    exchange = models.ForeignKey(Exchange, on_delete=models.CASCADE, related_name="items")
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="exchange_items")
    live = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["ticket"], condition=Q(live=True), name="exchangeitem_one_live_per_ticket"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exchange_id}: {self.ticket_id}"


# --- Organizer cancellation and rescheduling (AFT-4) ---------------------------------------------


class SessionCancellation(PublicIdModel, TimestampedModel):
    """Cancelling a session: sales stop at once, then a resumable job refunds every order in
    batches. Progress is counted from the rows themselves, so an interrupted run resumes where
    it stopped and never refunds an order twice."""

    class State(models.TextChoices):
        RUNNING = "running", _("Refunding")
        DONE = "done", _("Done")

    session = models.OneToOneField(Session, on_delete=models.PROTECT, related_name="cancellation")
    state = models.CharField(_("state"), max_length=8, choices=State.choices, default=State.RUNNING)
    reason = models.CharField(_("reason"), max_length=200)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    orders_total = models.PositiveIntegerField(_("orders to refund"), default=0)
    orders_done = models.PositiveIntegerField(_("orders refunded"), default=0)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("session cancellation")
        verbose_name_plural = _("session cancellations")

    def __str__(self) -> str:
        return f"{self.session}: {self.orders_done}/{self.orders_total}"


class SessionReschedule(TimestampedModel):
    """A session moved to another time. Holders are told, and until `free_refund_until` they
    may refund without a fee whatever the refund rule says."""

    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="reschedules")
    old_starts_at = models.DateTimeField(_("old start"))
    old_ends_at = models.DateTimeField(_("old end"))
    new_starts_at = models.DateTimeField(_("new start"))
    new_ends_at = models.DateTimeField(_("new end"))
    free_refund_until = models.DateTimeField(_("free refunds until"))
    reason = models.CharField(_("reason"), max_length=200)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        verbose_name = _("session reschedule")
        verbose_name_plural = _("session reschedules")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.session}: {self.old_starts_at} → {self.new_starts_at}"


class Notice(models.Model):
    """Outbox of after-sales messages to customers (refund progress, cancellations, reschedules,
    waitlist offers, transfers), sent by a job with retries through e-mail and SMS, so no
    business transaction waits on a mail server. Unique per (topic, recipient) for exactly-once
    notification from at-least-once jobs."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    topic = models.CharField(max_length=80)  # e.g. "refund:R…:succeeded"
    kind = models.CharField(max_length=5)  # email | sms
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = _("customer notice")
        verbose_name_plural = _("customer notices")
        constraints = [
            models.UniqueConstraint(
                fields=["topic", "kind", "recipient"], name="notice_once_per_topic"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notice_due_idx")]

    def __str__(self) -> str:
        return f"{self.topic} → {self.recipient}"


# --- Waitlist (AFT-5) ----------------------------------------------------------------------------


class WaitlistEntry(PublicIdModel, TimestampedModel):
    """A customer waiting for `quantity` admissions of `tier` of a sold-out session.

    Position is FIFO by `id` (assigned by the database at insert). In *offer* mode the next in
    line gets a time-limited hold (`offer_hold`) when seats return; in *prepaid* mode the
    customer pays up front (`order` awaiting payment → `prepaid`), and when seats return the
    purchase completes in queue order; unfulfilled at `deadline` → refunded in full.

    In prepaid mode the money sits on `deposit_order` (paid, no tickets); fulfilment creates
    `order` from the returned seats, paid by that deposit (refunds of it go back through the
    deposit's payment).
    """

    class Mode(models.TextChoices):
        OFFER = "offer", _("Offer")
        PREPAID = "prepaid", _("Prepaid")

    class State(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", _("Awaiting payment")
        WAITING = "waiting", _("Waiting")
        OFFERED = "offered", _("Offered")
        FULFILLED = "fulfilled", _("Fulfilled")
        EXPIRED = "expired", _("Offer expired")
        CANCELLED = "cancelled", _("Cancelled")
        REFUNDED = "refunded", _("Refunded (not fulfilled)")

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="waitlist")
    tier = models.ForeignKey(PriceTier, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="waitlist_entries"
    )
    quantity = models.PositiveSmallIntegerField(_("quantity"))
    mode = models.CharField(_("mode"), max_length=8, choices=Mode.choices)
    state = models.CharField(_("state"), max_length=20, choices=State.choices)
    unit_price = models.DecimalField(_("unit price"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3)
    deadline = models.DateTimeField(_("wait until"))
    offer_hold = models.ForeignKey(
        "inventory.Hold", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    offer_expires_at = models.DateTimeField(_("offer expires"), null=True, blank=True)
    deposit_order = models.OneToOneField(
        Order,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="waitlist_deposit",
        help_text=_("Prepaid mode: the order (without tickets) the customer paid up front."),
    )
    order = models.OneToOneField(
        Order,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="waitlist_entry",
        help_text=_("The order with the tickets, once fulfilled."),
    )
    fulfilled_at = models.DateTimeField(_("fulfilled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("waitlist entry")
        verbose_name_plural = _("waitlist")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "customer"],
                condition=Q(state__in=["awaiting_payment", "waiting", "offered"]),
                name="waitlist_one_open_entry_per_customer",
            ),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="waitlist_quantity_positive"),
        ]
        indexes = [models.Index(fields=["session", "state", "id"], name="waitlist_queue_idx")]

    def __str__(self) -> str:
        return f"{self.session_id} #{self.pk} × {self.quantity} ({self.state})"


class WaitlistHistory(models.Model):
    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="history")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20)
    note = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_state or '∅'} → {self.to_state}"


# --- Transfers (TKT-8) ---------------------------------------------------------------------------


def new_transfer_code() -> str:
    return new_code(12)


class Transfer(PublicIdModel, TimestampedModel):
    """A holder hands a ticket to someone else (by phone or e-mail); it moves when the receiver
    accepts with the code sent to them. Accepting revokes the old QR and issues a fresh one in
    the receiver's name."""

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting for the receiver")
        ACCEPTED = "accepted", _("Accepted")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired")

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="transfers")
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="transfers_sent"
    )
    receiver_contact = models.CharField(_("receiver phone or e-mail"), max_length=254)
    receiver_name = models.CharField(_("receiver name"), max_length=80)
    receiver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="transfers_received",
    )
    code = models.CharField(max_length=16, unique=True, default=new_transfer_code, editable=False)
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.PENDING
    )
    expires_at = models.DateTimeField(_("expires"))
    accepted_at = models.DateTimeField(_("accepted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("ticket transfer")
        verbose_name_plural = _("ticket transfers")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["ticket"],
                condition=Q(state="pending"),
                name="transfer_one_pending_per_ticket",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ticket_id} → {self.receiver_contact} ({self.state})"


# --- Customer service (AFT-6) --------------------------------------------------------------------


def new_case_number() -> str:
    return "C" + new_code(9)


class Case(PublicIdModel, TimestampedModel):
    """Feedback, a complaint or a refund dispute, optionally about one order; handled by the
    organizer's service staff within an SLA."""

    class Kind(models.TextChoices):
        FEEDBACK = "feedback", _("Feedback")
        COMPLAINT = "complaint", _("Complaint")
        REFUND_DISPUTE = "refund_dispute", _("Refund dispute")
        QUESTION = "question", _("Question")

    class Channel(models.TextChoices):
        WEB = "web", _("Web form")
        STAFF = "staff", _("Entered by staff")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        IN_PROGRESS = "in_progress", _("In progress")
        WAITING_CUSTOMER = "waiting_customer", _("Waiting for the customer")
        CLOSED = "closed", _("Closed")

    number = models.CharField(
        _("case number"), max_length=12, unique=True, default=new_case_number, editable=False
    )
    organizer = models.ForeignKey(
        Organizer, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="cases"
    )
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    contact = models.CharField(_("contact phone or e-mail"), max_length=254, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    subject = models.CharField(_("subject"), max_length=200)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    first_response_due = models.DateTimeField(_("first answer due"))
    resolution_due = models.DateTimeField(_("resolution due"))
    first_responded_at = models.DateTimeField(_("first answered"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    rating = models.PositiveSmallIntegerField(_("satisfaction (1–5)"), null=True, blank=True)
    rating_comment = models.CharField(_("rating comment"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("service case")
        verbose_name_plural = _("service cases")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | (Q(rating__gte=1) & Q(rating__lte=5)),
                name="case_rating_range",
            ),
        ]
        indexes = [models.Index(fields=["organizer", "state"], name="case_organizer_state_idx")]

    def __str__(self) -> str:
        return self.number


class CaseMessage(models.Model):
    """A message on a case: from the customer, a staff reply (visible to the customer) or a
    staff-only internal note."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    from_staff = models.BooleanField(default=False)
    internal = models.BooleanField(_("internal note"), default=False)
    body = models.TextField(_("message"))
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.case_id} @ {self.at}"


class CaseHistory(models.Model):
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="history")
    action = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.case_id}: {self.action}"


class FaqEntry(TimestampedModel):
    """A question and answer on the public FAQ page, edited by operators."""

    question = models.CharField(_("question"), max_length=200)
    answer = models.TextField(_("answer"))
    question_en = models.CharField(_("question (English)"), max_length=200, blank=True)
    answer_en = models.TextField(_("answer (English)"), blank=True)
    position = models.PositiveIntegerField(_("position"), default=0)
    published = models.BooleanField(_("published"), default=True)

    class Meta:
        verbose_name = _("FAQ entry")
        verbose_name_plural = _("FAQ")
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.question
