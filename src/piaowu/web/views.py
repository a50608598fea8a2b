"""Customer pages: parse the request, call a catalog selector or an accounts service, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.contrib.auth import login
from django.contrib.auth.views import LoginView, LogoutView
from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from piaowu.accounts.services import user_sign_up
from piaowu.catalog.models import CapacityMode, Event, EventKind, Session, Venue
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
    session_get,
    venue_get,
    venue_upcoming_sessions,
)
from piaowu.core.errors import DomainError, NotFound
from piaowu.core.money import CURRENCY_EXPONENT, CURRENCY_SYMBOL
from piaowu.inventory.services import max_per_customer
from piaowu.web.forms import LoginForm, SignUpForm

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
