"""Presentation helpers for the customer site: localized fields, money, venue-local times."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from typing import Any

import segno
from django import template
from django.conf import settings
from django.core.cache import cache
from django.utils import dateformat, formats, timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from piaowu.catalog.models import Localized, Session
from piaowu.catalog.selectors import cities_with_upcoming_events
from piaowu.core.money import CURRENCY_EXPONENT, CURRENCY_SYMBOL, default_currency

register = template.Library()


@register.filter
def qr_svg(payload: str) -> SafeString:
    """An inline SVG QR code of `payload` (a payment code, later a ticket). Safe to mark safe:
    segno draws the text as modules, none of it reaches the markup."""
    svg = segno.make(str(payload), error="m").svg_inline(scale=5, border=2, omitsize=True)
    return mark_safe(svg)  # noqa: S308


_HEX_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
DEFAULT_COLOUR = "#c2410c"
CITY_CACHE_KEY = "piaowu:web:cities:v1"
CITY_CACHE_SECONDS = 60


@register.filter
def tr(obj: Localized | None, field: str) -> str:
    """`{{ event|tr:"title" }}`: the field in the active language (English twin when set)."""
    if obj is None:
        return ""
    return obj.tr(field)


@register.filter
def money(amount: Decimal | int | str | None, currency: str = "") -> str:
    """`{{ tier.price|money:tier.currency }}` → "¥180" (cents only when there are some)."""
    if amount is None or amount == "":
        return ""
    value = Decimal(str(amount))
    code = currency or default_currency()
    places = CURRENCY_EXPONENT.get(code, 2)
    value = value.quantize(Decimal(1).scaleb(-places))
    text = f"{value:,}"
    if "." in text and set(text.split(".")[1]) == {"0"}:
        text = text.split(".")[0]
    symbol = CURRENCY_SYMBOL.get(code)
    return f"{symbol}{text}" if symbol else f"{text} {code}"


@register.filter
def safe_colour(value: str | None) -> str:
    """Colours go into style attributes: only accept #rgb / #rrggbb."""
    if value and _HEX_COLOUR.match(value):
        return value
    return DEFAULT_COLOUR


def date_format(name: str) -> str:
    """Named date formats of the site, translatable so each language reads naturally."""
    named = {
        # Translators: PHP-style date format (Django `date` filter) for a day heading.
        "day": pgettext("date format", "D, M j"),
        # Translators: PHP-style date format for a short date and time.
        "datetime": pgettext("date format", "M j, H:i"),
        # Translators: PHP-style date format for a short date.
        "short": pgettext("date format", "M j"),
        # Translators: PHP-style date format for a full date.
        "full": pgettext("date format", "D, M j, Y"),
        "time": "H:i",
    }
    return named.get(name) or str(formats.get_format(name))


@register.filter
def wallclock(value: dt.datetime | dt.date | None, fmt: str = "time") -> str:
    """Format a datetime *as it is* (no conversion to the site's zone); `fmt` is a name of
    `date_format` ("day", "datetime", "short", "full", "time") or a Django format setting.

    Django's `date`/`time` filters convert aware datetimes to the current time zone; a session's
    `local_starts_at` is already in its venue's zone and must stay there.
    """
    if value is None:
        return ""
    return dateformat.format(value, date_format(fmt))


@register.filter
def in_zone(value: dt.datetime | None, zone: str) -> dt.datetime | None:
    """`{{ session.sales_open_at|in_zone:venue.timezone|wallclock:"datetime" }}`."""
    if value is None:
        return None
    return value.astimezone(zoneinfo.ZoneInfo(zone))


@register.filter
def sitedate(value: dt.datetime | None, fmt: str = "short") -> str:
    """Format an aware datetime in the site's zone with a named format (event cards)."""
    if value is None:
        return ""
    return dateformat.format(timezone.localtime(value), date_format(fmt))


@register.filter
def zone_note(value: dt.datetime | None) -> str:
    """The zone abbreviation ("JST") when a venue-local time is not in the site's zone."""
    if value is None or value.tzinfo is None:
        return ""
    if str(value.tzinfo) == settings.TIME_ZONE:
        return ""
    return value.tzname() or str(value.tzinfo)


@register.filter
def zone_suffix(value: dt.datetime | None) -> str:
    """The zone with a leading space (" JST"), or "": for sentences ending with a time."""
    zone = zone_note(value)
    return f" {zone}" if zone else ""


@register.filter
def min_tier_price(session: Session) -> str:
    """Lowest active price of a session, from its prefetched tiers ("" when it has none)."""
    tiers = [t for t in session.price_tiers.all() if t.is_active]
    if not tiers:
        return ""
    cheapest = min(tiers, key=lambda t: Decimal(t.price))
    return money(cheapest.price, cheapest.currency)


@register.inclusion_tag("web/_sales_state.html")
def sales_state(session: Session) -> dict[str, Any]:
    """A badge for the session's sales state, with the opening time in the venue's zone."""
    state = session.sales_state()
    labels = {
        "on_sale": _("On sale"),
        "not_open": _("Sales open %(time)s"),
        "closed": _("Sales closed"),
        "cancelled": _("Cancelled"),
    }
    label = labels[state]
    if state == "not_open":
        opens = session.sales_open_at.astimezone(session.venue.tzinfo)
        label = label % {"time": wallclock(opens, "datetime")}
    return {"state": state, "label": label}


@register.inclusion_tag("web/_poster.html")
def poster(event: Any, size: str = "card") -> dict[str, Any]:
    """The event's poster image, or a generated poster from its colour, title and kind."""
    return {
        "event": event,
        "size": size,
        "title": event.tr("title"),
        "kind_label": event.get_kind_display(),
        "colour": safe_colour(event.poster_color),
        "image_url": event.poster.url if event.poster else "",
    }


@register.simple_tag
def city_choices() -> list[str]:
    """Cities with upcoming sessions, for the header's city picker (cached briefly)."""
    cities: list[str] | None = cache.get(CITY_CACHE_KEY)
    if cities is None:
        cities = cities_with_upcoming_events()
        cache.set(CITY_CACHE_KEY, cities, CITY_CACHE_SECONDS)
    return cities
