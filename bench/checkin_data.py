"""Data and database checks for `bench/checkin`: a venue with gates and scanning devices, a
general-admission session whose doors are open now, and its paid tickets — all made through
the real services — then the counts taken from the database after the scans.

Everything is written by the services an operator and the buyers would use:
`organizer_create`, `venue_create`, `event_create`, `session_create` (catalog),
`membership_grant` (the admin who registers the devices), `checkin.services.gate_create` and
`device_register`, and for every order `orders.services.order_purchase` (hold and check out in
one transaction, 1–40 admissions) then `order_mark_paid`, whose paid hook issues the tickets
(`tickets_issue_for_order`). Nothing is bulk-inserted, so the rows are exactly the services'
own. The orders are made by a few processes in parallel (each its own connection); the QR texts
come from `tickets.selectors.ticket_qr_text`. Call after `django.setup()`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, connections
from django.db.models import Count
from django.test.utils import override_settings
from django.utils import timezone

from piaowu.accounts.models import Organizer, Role, User
from piaowu.accounts.services import membership_grant
from piaowu.catalog.models import CapacityMode, EventKind, SalesChannel, Session, Venue
from piaowu.catalog.services import TierSpec, event_create, organizer_create, session_create
from piaowu.catalog.services import venue_create as catalog_venue_create
from piaowu.orders.services import order_mark_paid, order_purchase
from piaowu.tickets.models import Ticket
from piaowu.tickets.selectors import ticket_qr_text

ORGANIZER_SLUG = "bench-checkin"
ADMIN_EMAIL = "bench-checkin-admin@example.com"
GA_TIER = "ga"
GA_PRICE = Decimal("280")
#: Order sizes cycle through 1..40 (20.5 admissions an order on average: group bookings). The
#: tier allows 40 an order and the bench raises the per-customer limit to match
#: (`PIAOWU_MAX_PER_CUSTOMER`, as an operator would set it for group sales): ~1,000 orders
#: for 20,000 tickets instead of ~5,700 orders of 1–6, which took 4 minutes to build.
ORDER_SIZES = tuple(range(1, 41))
#: The session starts in an hour; doors open `PIAOWU_DOORS_OPEN_MINUTES` (120) before, so a
#: ticket admits now. Sales close half an hour from now (sales must close after they open).
STARTS_IN = dt.timedelta(hours=1)
SALES_CLOSE_IN = dt.timedelta(minutes=30)

_run = itertools.count(1)


@dataclass
class Gate:
    public_id: str
    name: str
    device_token: str  # `Authorization: Device <token>`


@dataclass
class Prepared:
    """What the client needs: the session, the gates with their devices' tokens, the tickets'
    QR texts and serials (in issue order)."""

    session_public_id: str
    session_pk: int
    venue_pk: int
    gates: list[Gate]
    qr_texts: list[str] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)
    orders: int = 0
    build_s: dict[str, float] = field(default_factory=dict)


def _label() -> str:
    return f"{timezone.now():%Y%m%d-%H%M%S}-{next(_run)}"


def organizer() -> Organizer:
    existing = Organizer.objects.filter(slug=ORGANIZER_SLUG).first()
    if existing is not None:
        return existing
    return organizer_create(slug=ORGANIZER_SLUG, name="检票压测", name_en="Check-in bench")


def admin_user(org: Organizer) -> User:
    """The organizer's admin, who registers the scanning devices."""
    user = User.objects.filter(email=ADMIN_EMAIL).first()
    if user is None:
        user = User.objects.create_user(email=ADMIN_EMAIL, password="bench correct horse 42")
    membership_grant(user=user, organizer=org, role=Role.ADMIN)
    return user


def venue_with_gates(org: Organizer, gates: int, actor: User) -> tuple[Venue, list[Gate]]:
    """A new venue with `gates` gates (all entrances) and one registered device per gate."""
    from piaowu.checkin.services import device_register, gate_create

    label = _label()
    venue = catalog_venue_create(
        organizer=org,
        name=f"检票压测体育场 {label}",
        name_en=f"Check-in bench stadium {label}",
        city="上海",
        city_en="Shanghai",
        address="浦东新区世博大道 1 号",
    )
    made = []
    for index in range(1, gates + 1):
        gate = gate_create(venue=venue, name=f"{index}号闸机")
        _device, token = device_register(venue=venue, name=f"闸机 {index} 手持机", actor=actor)
        made.append(Gate(public_id=gate.public_id, name=gate.name, device_token=token))
    return venue, made


def ga_session(org: Organizer, venue: Venue, capacity: int) -> Session:
    """A general-admission session on sale now whose doors are already open."""
    label = _label()
    now = timezone.now()
    event = event_create(
        organizer=org,
        kind=EventKind.PERFORMANCE,
        title=f"检票压测 音乐节 {label}",
        code=f"ci-{label}",
    )
    return session_create(
        event=event,
        venue=venue,
        starts_at=now + STARTS_IN,
        sales_open_at=now - dt.timedelta(minutes=1),
        sales_close_at=now + SALES_CLOSE_IN,
        capacity_mode=CapacityMode.GENERAL,
        capacity=capacity,
        tiers=[
            TierSpec(
                code=GA_TIER,
                name="通票",
                name_en="GA",
                price=GA_PRICE,
                max_per_order=max(ORDER_SIZES),
            )
        ],
        code=f"ci-{label}",
    )


def order_sizes(tickets: int) -> list[int]:
    """Order sizes cycling through `ORDER_SIZES` whose sum is exactly `tickets`."""
    sizes: list[int] = []
    left = tickets
    for size in itertools.cycle(ORDER_SIZES):
        if left <= 0:
            break
        sizes.append(min(size, left))
        left -= sizes[-1]
    return sizes


def buy(session_pk: int, sizes: list[tuple[int, int]]) -> int:
    """Buy and pay one order per (index, size) as separate anonymous buyers (group bookings:
    the per-customer limit is raised to the largest size). Returns the number of orders;
    raises on any refusal (the session has exactly the capacity needed)."""
    session = Session.objects.select_related("event").get(pk=session_pk)
    channel = SalesChannel.objects.get(
        organizer_id=session.event.organizer_id, kind=SalesChannel.Kind.WEB
    )
    with override_settings(PIAOWU_MAX_PER_CUSTOMER=max(ORDER_SIZES)):
        for index, size in sizes:
            _buy_one(session, channel, index, size)
    return len(sizes)


def _buy_one(session: Session, channel: SalesChannel, index: int, size: int) -> None:
    order = order_purchase(
        session=session,
        channel=channel,
        holder_key=f"bench-checkin-{session.pk}-{index}",
        tier_code=GA_TIER,
        quantity=size,
        contact_phone=f"139{index % 100_000_000:08d}",
    )
    order_mark_paid(order=order)


def _drop_pool() -> None:
    """Close this process's connections and psycopg pool (a forked child must not share the
    parent's sockets or pool threads; the next query opens a new pool)."""
    connections.close_all()
    if hasattr(connection, "close_pool"):
        connection.close_pool()


def _buy_in_child(args: tuple[int, list[tuple[int, int]]]) -> int:
    try:
        return buy(*args)
    finally:
        _drop_pool()


def issue_tickets(
    session_pk: int, tickets: int, processes: int, progress: Callable[[str], None]
) -> int:
    """`tickets` admissions bought and paid in orders of 1–40 by `processes` parallel buyers
    (fork; each child its own connection). Returns the number of orders."""
    sizes = list(enumerate(order_sizes(tickets)))
    if processes <= 1:
        return buy(session_pk, sizes)
    chunk = 50
    jobs = [(session_pk, sizes[i : i + chunk]) for i in range(0, len(sizes), chunk)]
    _drop_pool()
    done = 0
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        for count in pool.imap_unordered(_buy_in_child, jobs):
            done += count
            if done % 1000 < chunk:
                progress(f"    {done:,} / {len(sizes):,} orders paid")
    return done


def qr_texts(session_pk: int) -> tuple[list[str], list[str]]:
    """(static QR texts, serials) of the session's valid tickets, in issue order."""
    texts, serials = [], []
    for ticket in _tickets(session_pk):
        texts.append(ticket_qr_text(ticket))
        serials.append(ticket.serial)
    return texts, serials


def _tickets(session_pk: int) -> Iterator[Ticket]:
    return (
        Ticket.objects.filter(session_id=session_pk, state=Ticket.State.VALID)
        .select_related("signing_key")
        .order_by("id")
        .iterator(chunk_size=2000)
    )


def prepare(
    *,
    tickets: int,
    gates: int,
    processes: int = 2,
    progress: Callable[[str], None] = print,
) -> Prepared:
    """The whole setup; `build_s` says how long each part took."""
    import time

    timings: dict[str, float] = {}
    began = time.perf_counter()
    org = organizer()
    actor = admin_user(org)
    venue, made = venue_with_gates(org, gates, actor)
    session = ga_session(org, venue, capacity=tickets)
    timings["venue_gates_devices_session"] = round(time.perf_counter() - began, 2)
    progress(f"    venue, {gates} gates and devices, session: {timings[next(iter(timings))]} s")
    began = time.perf_counter()
    orders = issue_tickets(session.pk, tickets, processes, progress)
    timings["orders_paid"] = round(time.perf_counter() - began, 2)
    began = time.perf_counter()
    texts, serials = qr_texts(session.pk)
    timings["qr_texts"] = round(time.perf_counter() - began, 2)
    if len(texts) != tickets:
        raise RuntimeError(f"expected {tickets} tickets, the database has {len(texts)}")
    return Prepared(
        session_public_id=session.public_id,
        session_pk=session.pk,
        venue_pk=venue.pk,
        gates=made,
        qr_texts=texts,
        serials=serials,
        orders=orders,
        build_s=timings,
    )


# --- Checks after a run ---------------------------------------------------------------------


def admission_counts(session_pk: int) -> dict[str, Any]:
    """What the database says after the scans.

    `double_admissions` = tickets with more than one accepted entry scan (`valid` or
    `reentry` on a session without re-entry), plus tickets whose admission counts more than
    one entry, plus scans flagged as a conflict (an offline double admission found on sync);
    counted once per ticket. Must be 0.
    """
    from piaowu.checkin.models import Admission, Scan

    session = Session.objects.get(pk=session_pk)
    entries = Scan.objects.filter(session_id=session_pk, direction=Scan.Direction.ENTRY)
    multi_scans = set(
        entries.filter(accepted=True, ticket__isnull=False)
        .values("ticket_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("ticket_id", flat=True)
    )
    admissions = Admission.objects.filter(session_id=session_pk)
    multi_entries: set[int] = set()
    if not session.reentry_allowed:
        multi_entries = set(admissions.filter(entries__gt=1).values_list("ticket_id", flat=True))
    conflicts = set(
        Scan.objects.filter(session_id=session_pk, conflict=True).values_list(
            "ticket_id", flat=True
        )
    )
    doubles = multi_scans | multi_entries | conflicts
    outcomes = dict(
        Scan.objects.filter(session_id=session_pk)
        .values("outcome")
        .annotate(n=Count("id"))
        .values_list("outcome", "n")
    )
    return {
        "tickets": Ticket.objects.filter(session_id=session_pk).count(),
        "admissions": admissions.count(),
        "scans": sum(outcomes.values()),
        "scan_outcomes": dict(sorted(outcomes.items())),
        "accepted_entry_scans": entries.filter(accepted=True).count(),
        "tickets_with_several_accepted_entries": len(multi_scans),
        "admissions_with_several_entries": len(multi_entries),
        "conflict_scans": len(conflicts),
        "double_admissions": len(doubles),
    }


def close_connection() -> None:
    """Give the bench's own connection back while the server is measured."""
    connection.close()
