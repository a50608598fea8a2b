"""Customer pages: parse the request, call a selector or a service (catalog, accounts, orders,
payments), render."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, LogoutView
from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from piaowu.accounts.models import User
from piaowu.accounts.services import user_sign_up
from piaowu.accounts.two_factor import is_staff_user
from piaowu.catalog.models import CapacityMode, Event, EventKind, Seat, Session, Venue
from piaowu.catalog.selectors import SORTS as SEARCH_SORTS
from piaowu.catalog.selectors import (
    categories,
    cities_with_upcoming_events,
    event_get,
    event_hot,
    event_search,
    event_sessions_grouped,
    event_upcoming,
    parse_search_filters,
    sales_channel_for,
    session_get,
    venue_get,
    venue_upcoming_sessions,
)
from piaowu.core import clock
from piaowu.core.errors import DomainError, NotFound
from piaowu.core.money import CURRENCY_EXPONENT, CURRENCY_SYMBOL, Money
from piaowu.inventory.holders import grant_order, granted_order_ids, holder_key_for
from piaowu.inventory.models import Hold
from piaowu.inventory.selectors import hold_for_holder
from piaowu.inventory.services import max_per_customer
from piaowu.orders.models import Order
from piaowu.orders.selectors import order_get_for_buyer, order_lookup, orders_for_customer
from piaowu.orders.services import order_cancel, order_checkout
from piaowu.orders.states import PAID_STATES, OrderState
from piaowu.payments.models import Payment
from piaowu.payments.providers import enabled_providers, notify_url
from piaowu.payments.services import payment_start
from piaowu.web.forms import (
    PROVIDER_LABELS,
    CheckoutForm,
    LoginForm,
    OrderLookupForm,
    PaymentChoiceForm,
    SignUpForm,
)

T = TypeVar("T")

SEARCH_PAGE_SIZE = 20
HOME_HOT_LIMIT = 8
HOME_UPCOMING_LIMIT = 12
CITY_SESSION_KEY = "piaowu_city"


def _found(getter: Callable[[str], T], public_id: str) -> T:
    """Run a `*_get` selector; its NotFound becomes the site's (translated) 404 page."""
    try:
        return getter(public_id)
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc


def _chosen_city(request: HttpRequest) -> str:
    """`?city=` picks a city (empty clears it); the choice is remembered in the session."""
    if "city" in request.GET:
        city = request.GET["city"].strip()[:60]
        if city:
            request.session[CITY_SESSION_KEY] = city
        else:
            request.session.pop(CITY_SESSION_KEY, None)
        return city
    return str(request.session.get(CITY_SESSION_KEY, ""))


def kind_tabs() -> list[tuple[str, str]]:
    """Short labels of the kinds for the home page's tabs."""
    labels = {
        EventKind.FILM: _("Films"),
        EventKind.PERFORMANCE: _("Shows"),
        EventKind.SPORT: _("Sports"),
        EventKind.SCENIC: _("Attractions"),
        EventKind.TRIP: _("Trips"),
    }
    return [(str(kind), labels.get(kind, str(kind.label))) for kind in EventKind]


def sort_labels() -> list[tuple[str, str]]:
    labels = {
        "relevance": _("Best match"),
        "hot": _("Most popular"),
        "soon": _("Soonest"),
        "price_asc": _("Price: low to high"),
        "price_desc": _("Price: high to low"),
    }
    return [(sort, labels[sort]) for sort in SEARCH_SORTS]


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    city = _chosen_city(request)
    kind = request.GET.get("kind", "")
    if kind not in EventKind.values:
        kind = ""
    context = {
        "city": city,
        "kind": kind,
        "kind_tabs": kind_tabs(),
        "hot_events": event_hot(city=city, kind=kind, limit=HOME_HOT_LIMIT),
        "upcoming_events": event_upcoming(city=city, kind=kind, limit=HOME_UPCOMING_LIMIT),
        "categories": categories(),
    }
    return render(request, "web/home.html", context)


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        "params": request.GET,
        "kinds": EventKind.choices,
        "categories": categories(),
        "cities": cities_with_upcoming_events(),
        "sorts": sort_labels(),
        "remembered_city": request.session.get(CITY_SESSION_KEY, ""),
    }
    try:
        filters = parse_search_filters(request.GET)
    except DomainError as exc:
        context["errors"] = exc.details.get("fields", {})
        context["error_message"] = str(exc.message)
        return render(request, "web/search.html", context, status=400)
    page = Paginator(event_search(filters), SEARCH_PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(filters=filters, page=page, errors={})
    return render(request, "web/search.html", context)


def event_facts(event: Event) -> list[tuple[str, str]]:
    """Kind-specific facts for the event page, as (label, value) pairs with empty ones left out."""
    facts: list[tuple[str, str]] = []

    def add(label: str, value: object) -> None:
        if value not in (None, ""):
            facts.append((label, str(value)))

    detail: Any = None
    if event.kind in {EventKind.FILM, EventKind.SPORT, EventKind.SCENIC, EventKind.TRIP}:
        try:
            detail = getattr(event, str(event.kind))
        except ObjectDoesNotExist:  # the kind's details row is optional
            detail = None
    if event.kind == EventKind.FILM and detail is not None:
        add(_("Original title"), detail.original_title)
        add(_("Director"), detail.director)
    performers = ", ".join(event.performer_list())
    add(_("Cast") if event.kind == EventKind.FILM else _("Performers"), performers)
    if event.duration_minutes:
        add(_("Duration"), _("%(n)d min") % {"n": event.duration_minutes})
    if event.kind == EventKind.FILM and detail is not None:
        add(_("Language"), detail.language)
        add(_("Formats"), detail.formats)
        if detail.score is not None:
            add(_("Score"), detail.score)
    add(_("Rating") if event.kind == EventKind.FILM else _("Age advice"), event.age_advice)
    if event.kind == EventKind.TRIP and detail is not None:
        origin = f"{detail.origin} ({detail.origin_code})" if detail.origin_code else detail.origin
        destination = (
            f"{detail.destination} ({detail.destination_code})"
            if detail.destination_code
            else detail.destination
        )
        add(_("Route"), f"{origin} → {destination}")
        add(_("Mode"), detail.get_mode_display())
        add(_("Carrier"), detail.carrier)
        add(_("Route number"), detail.route_code)
    if event.kind == EventKind.SPORT and detail is not None:
        add(_("League"), detail.league)
        if detail.home_team or detail.away_team:
            add(_("Teams"), f"{detail.home_team} vs {detail.away_team}".strip(" vs"))
    if event.kind == EventKind.SCENIC and detail is not None:
        add(_("Opening hours"), detail.opening_hours)
        add(_("Entry notes"), detail.entry_notes)
    return facts


@require_GET
def event_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    event = _found(event_get, public_id)
    context = {
        "event": event,
        "facts": event_facts(event),
        "session_groups": event_sessions_grouped(event),
    }
    return render(request, "web/event.html", context)


@require_GET
def session_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    session = _found(session_get, public_id)
    context = {
        "session": session,
        "event": session.event,
        "venue": session.venue,
        "tiers": list(session.price_tiers.all()),
        "reserved": session.capacity_mode == CapacityMode.RESERVED and session.seat_map_id,
    }
    context.update(hold_panel_context(session))
    return render(request, "web/session.html", context)


def map_links(venue: Venue) -> list[tuple[str, str]]:
    """Plain links to public map searches for the venue (no API keys)."""
    place = f"{venue.city} {venue.address} {venue.name}"
    links = []
    if venue.latitude is not None and venue.longitude is not None:
        amap = "https://uri.amap.com/marker?" + urlencode(
            {"position": f"{venue.longitude},{venue.latitude}", "name": venue.name}
        )
        osm = "https://www.openstreetmap.org/?" + urlencode(
            {"mlat": venue.latitude, "mlon": venue.longitude, "zoom": 17}
        )
    else:
        amap = "https://uri.amap.com/search?" + urlencode({"keyword": place})
        osm = "https://www.openstreetmap.org/search?" + urlencode({"query": place})
    links.append((_("Amap"), amap))
    links.append((_("OpenStreetMap"), osm))
    return links


@require_GET
def venue_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    venue = _found(venue_get, public_id)
    context = {
        "venue": venue,
        "halls": list(venue.halls.all()),
        "sessions": venue_upcoming_sessions(venue),
        "map_links": map_links(venue),
    }
    return render(request, "web/venue.html", context)


# --- Accounts ---------------------------------------------------------------------------------


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


class WebLoginView(LoginView):
    template_name = "web/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def get_success_url(self) -> str:
        # Staff continue to the second factor (enrolment the first time), then where they were
        # going. (`login()` replaced request.user with one that knows no device yet.)
        url = super().get_success_url()
        if is_staff_user(self.request.user):
            return f"{reverse('web:two_factor')}?{urlencode({'next': url})}"
        return url


class WebLogoutView(LogoutView):
    http_method_names = ["post", "options"]


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(_safe_next(request, reverse("web:home")))
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_sign_up(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                display_name=form.cleaned_data["display_name"],
            )
        except DomainError as exc:
            field = {"invalid_email": "email", "email_taken": "email"}.get(exc.code, "password1")
            for message in exc.details.get("reasons") or [str(exc.message)]:
                form.add_error(field, message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(_safe_next(request, reverse("web:home")))
    context = {"form": form, "next": _safe_next(request, "")}
    return render(request, "web/signup.html", context, status=400 if form.errors else 200)


def hold_panel_context(session: Session) -> dict[str, Any]:
    """What the session page's selection / hold panel needs: whether it sells now, the
    per-customer limit, quantity choices per tier (general admission / daily) and how the site
    formats money (symbol, decimals) so the script formats totals the same way."""
    limit = max_per_customer()
    tiers = [t for t in session.price_tiers.all() if t.is_active]
    currencies = {t.currency for t in tiers} | set(CURRENCY_EXPONENT)
    return {
        "selling": session.sales_state() == "on_sale" and bool(tiers),
        "hold_limit": limit,
        "hold_quantities": list(range(1, limit + 1)),
        "hold_tiers": [
            (t, list(range(max(1, t.min_per_order), min(limit, t.max_per_order) + 1)))
            for t in tiers
            if t.min_per_order <= min(limit, t.max_per_order)
        ],
        "money_formats": {
            code: [CURRENCY_SYMBOL.get(code, ""), CURRENCY_EXPONENT.get(code, 2)]
            for code in sorted(currencies)
        },
    }


# --- Checkout, paying and orders ---------------------------------------------------------------
#
# Who is buying: `inventory.holders` (the same rule as the API). Orders a guest looked up by
# code + phone, or bought in this browser, are remembered in the session (`piaowu_orders`) so
# their pages stay open.

ORDERS_PAGE_SIZE = 20


def _customer(request: HttpRequest) -> User | None:
    user = getattr(request, "user", None)
    return user if isinstance(user, User) and user.is_authenticated else None


def _holder_key(request: HttpRequest) -> str:
    return holder_key_for(user=_customer(request), session=request.session)


def _granted_orders(request: HttpRequest) -> list[str]:
    return granted_order_ids(request.session)


def _grant_order(request: HttpRequest, order: Order) -> None:
    grant_order(request.session, order.public_id)


def _buyer_order(request: HttpRequest, public_id: str) -> Order:
    """The order if this browser may see it; anything else is the site's 404."""
    try:
        return order_get_for_buyer(
            public_id=public_id,
            customer=_customer(request),
            holder_key=_holder_key(request),
            granted=_granted_orders(request),
        )
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc


@dataclass(frozen=True)
class ItemLine:
    """One line of a hold or an order as the pages show it."""

    label: str
    tier_name: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    currency: str


def seat_label(seat: Seat) -> str:
    # The seat map's own wording (seatmap.js `data-label-seat`), one translation for both.
    return _("{section} · Row {row} · Seat {number}").format(
        section=seat.section.tr("name"), row=seat.row_label, number=seat.number_label
    )


def _item_lines(items: Iterable[Any]) -> list[ItemLine]:
    """Hold items or order lines (both have `seat`, `tier`, `quantity`), seats first by code."""
    lines = []
    for item in items:
        unit = Decimal(getattr(item, "unit_price", None) or item.tier.price)
        currency = getattr(item, "currency", None) or item.tier.currency
        tier_name = item.tier.tr("name")
        label = (
            seat_label(item.seat)
            if item.seat is not None
            else _("%(tier)s × %(n)d") % {"tier": tier_name, "n": item.quantity}
        )
        lines.append(
            ItemLine(
                label=label,
                tier_name=tier_name,
                quantity=item.quantity,
                unit_price=unit,
                amount=unit * item.quantity,
                currency=currency,
            )
        )
    return lines


def _lines_total(lines: list[ItemLine]) -> Money | None:
    if not lines or len({line.currency for line in lines}) != 1:
        return None
    return Money(sum((line.amount for line in lines), Decimal(0)), lines[0].currency).quantized()


def _order_of_hold(hold: Hold) -> Order | None:
    try:
        return hold.order
    except ObjectDoesNotExist:
        return None


def _contact_initial(customer: User | None) -> dict[str, str]:
    """A signed-in buyer's e-mail and the phone of their latest order, to save typing."""
    if customer is None:
        return {}
    latest = orders_for_customer(customer).exclude(contact_phone="").first()
    return {"email": customer.email, "phone": latest.contact_phone if latest else ""}


def _apply_checkout_error(form: CheckoutForm, exc: DomainError) -> None:
    field = exc.details.get("field")
    if field in form.fields:
        form.add_error(field, str(exc.message))
    else:
        form.add_error(None, str(exc.message))


def _start_payment(request: HttpRequest, order: Order, provider: str) -> HttpResponse:
    """Start paying with `provider` and send the buyer on: to the provider's page, or back to
    the order page (which shows a QR code or, on failure, the reason and "Pay" again)."""
    order_url = reverse("web:order", kwargs={"public_id": order.public_id})
    if order.state in PAID_STATES:  # free tickets are paid at checkout
        return redirect(order_url)
    try:
        payment = payment_start(
            order=order,
            provider_name=provider,
            notify_url=notify_url(provider, base_url=request.build_absolute_uri("/")),
            return_url=request.build_absolute_uri(order_url),
        )
    except DomainError as exc:
        messages.error(request, str(exc.message))
        return redirect(order_url)
    if payment.redirect_url:
        return redirect(payment.redirect_url)
    return redirect(order_url)


@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest, hold_id: str) -> HttpResponse:
    """The held tickets, contact details and payment method; POST checks out and pays."""
    key = _holder_key(request)
    hold = hold_for_holder(hold_id, key) if key else None
    if hold is None:
        raise Http404(_("No such reservation."))
    existing = _order_of_hold(hold)
    if existing is not None:  # checked out already (a second tab, the back button)
        _grant_order(request, existing)
        return redirect("web:order", public_id=existing.public_id)
    customer = _customer(request)
    providers = enabled_providers()
    form = CheckoutForm(
        request.POST if request.method == "POST" else None,
        providers=providers,
        guest=customer is None,
        initial=_contact_initial(customer),
    )
    if request.method == "POST" and form.is_valid():
        try:
            order = order_checkout(
                hold=hold,
                channel=sales_channel_for(hold.session),
                holder_key=key,
                customer=customer,
                contact_phone=form.cleaned_data["phone"],
                contact_email=form.cleaned_data["email"],
            )
        except DomainError as exc:
            _apply_checkout_error(form, exc)
        else:
            _grant_order(request, order)
            return _start_payment(request, order, form.cleaned_data["provider"])
    session = _found(session_get, hold.session.public_id)
    now = clock.now()
    active = hold.status == Hold.Status.ACTIVE and hold.expires_at > now
    lines = _item_lines(sorted(hold.items.all(), key=lambda i: (i.tier.sort_order, i.pk)))
    context = {
        "hold": hold,
        "session": session,
        "event": session.event,
        "venue": session.venue,
        "lines": lines,
        "total": _lines_total(lines),
        "active": active,
        "seconds_left": max(int((hold.expires_at - now).total_seconds()), 0) if active else 0,
        "form": form,
        "no_providers": not providers,
    }
    status = 400 if form.errors or (request.method == "POST" and not active) else 200
    return render(request, "web/checkout.html", context, status=status)


def payment_note(payment: Payment, order: Order) -> str:
    """Why a payment's money went back automatically, in the buyer's words ("" otherwise)."""
    if payment.status not in (Payment.Status.REFUNDING, Payment.Status.REFUNDED):
        return ""
    if payment.refund_reason == "duplicate_payment":
        reason = _("the order was already paid by another payment")
    elif payment.refund_reason != "order_not_payable":
        return ""
    elif order.state == OrderState.CANCELLED:
        reason = _("the order had been cancelled")
    elif order.state == OrderState.EXPIRED:
        reason = _("the order had expired")
    else:
        reason = _("the order could no longer be paid")
    if payment.status == Payment.Status.REFUNDING:
        return _("Being refunded automatically: %(reason)s.") % {"reason": reason}
    return _("Refunded automatically: %(reason)s.") % {"reason": reason}


@require_GET
def order_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    order = _buyer_order(request, public_id)
    session = order.session
    now = clock.now()
    awaiting = order.state == OrderState.AWAITING_PAYMENT
    payable = awaiting and order.payment_deadline > now
    payments = list(order.payments.all())
    qr_payment = next(
        (
            p
            for p in payments
            if payable and p.status == Payment.Status.STARTED and p.qr_code_payload
        ),
        None,
    )
    lines = _item_lines(sorted(order.lines.all(), key=lambda line: (line.tier.sort_order, line.pk)))
    context = {
        "order": order,
        "session": session,
        "event": session.event,
        "venue": session.venue,
        "lines": lines,
        "awaiting": awaiting,
        "payable": payable,
        "seconds_left": (
            max(int((order.payment_deadline - now).total_seconds()), 0) if payable else 0
        ),
        "payments": [
            {
                "payment": p,
                "provider": PROVIDER_LABELS.get(p.provider, p.provider),
                "note": payment_note(p, order),
            }
            for p in payments
        ],
        "qr_payment": qr_payment,
        "pay_form": PaymentChoiceForm(providers=enabled_providers()),
        # The API's view of the order (`GET /api/v1/orders/<id>`), polled while it awaits payment.
        "poll_url": reverse("api:orders_detail", kwargs={"order_id": order.public_id}),
    }
    return render(request, "web/order.html", context)


@require_POST
def order_pay(request: HttpRequest, public_id: str) -> HttpResponse:
    order = _buyer_order(request, public_id)
    form = PaymentChoiceForm(request.POST, providers=enabled_providers())
    if not form.is_valid():
        messages.error(request, _("Choose a payment method."))
        return redirect("web:order", public_id=order.public_id)
    return _start_payment(request, order, form.cleaned_data["provider"])


@require_POST
def order_cancel_view(request: HttpRequest, public_id: str) -> HttpResponse:
    order = _buyer_order(request, public_id)
    try:
        order_cancel(order=order, actor=_customer(request), reason="cancelled by the buyer")
    except DomainError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("Your order is cancelled; the seats are free for others."))
    return redirect("web:order", public_id=order.public_id)


@login_required
@require_GET
def my_orders(request: HttpRequest) -> HttpResponse:
    customer = _customer(request)
    assert customer is not None  # login_required
    page = Paginator(orders_for_customer(customer), ORDERS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "web/orders.html", {"page": page})


@require_http_methods(["GET", "POST"])
def order_lookup_view(request: HttpRequest) -> HttpResponse:
    """Find a guest order by its code and the phone given at checkout. An unknown code and a
    wrong phone get the same answer, so the page cannot be used to test codes."""
    form = OrderLookupForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            order = order_lookup(code=form.cleaned_data["code"], phone=form.cleaned_data["phone"])
        except NotFound:
            form.add_error(None, _("No order matches this code and phone number."))
        else:
            _grant_order(request, order)
            return redirect("web:order", public_id=order.public_id)
    status = 400 if form.errors else 200
    return render(request, "web/order_lookup.html", {"form": form}, status=status)
