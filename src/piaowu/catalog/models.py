"""What is for sale: venues, halls, versioned seat maps, events, sessions and price tiers.

Rows here are changed only through `catalog.services`; reads for pages go through
`catalog.selectors`. Content fields come in Chinese with an optional English twin (`*_en`);
`Localized.tr()` picks the one for the active language.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Organizer
from piaowu.core.models import PublicIdModel, TimestampedModel
from piaowu.core.money import Money, default_currency


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("Unknown time zone: %(tz)s"), params={"tz": value})


def split_codes(text: str) -> list[str]:
    """ "A, B ,C" → ["A", "B", "C"]: how comma-separated code lists are read everywhere."""
    return [code.strip() for code in text.split(",") if code.strip()]


class Localized:
    """Pick `<field>_en` when the active language is English and it is filled in."""

    def tr(self, field: str) -> str:
        language = translation.get_language() or ""
        if language.startswith("en"):
            english = getattr(self, f"{field}_en", "")
            if english:
                return str(english)
        return str(getattr(self, field))


class SalesChannel(TimestampedModel):
    """Where an order comes from; every order records one (CH-1)."""

    class Kind(models.TextChoices):
        WEB = "web", _("Web / H5")
        BOX_OFFICE = "box_office", _("Box office")
        KIOSK = "kiosk", _("Kiosk")
        PARTNER = "partner", _("Partner")

    organizer = models.ForeignKey(Organizer, on_delete=models.CASCADE, related_name="channels")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    code = models.SlugField(_("code"), max_length=40)
    name = models.CharField(_("name"), max_length=80)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("sales channel")
        verbose_name_plural = _("sales channels")
        constraints = [
            models.UniqueConstraint(fields=["organizer", "code"], name="channel_code_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=["web", "box_office", "kiosk", "partner"]),
                name="channel_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class Venue(Localized, PublicIdModel, TimestampedModel):
    class Service(models.TextChoices):
        PARKING = "parking", _("Parking")
        METRO = "metro", _("Near metro")
        WIFI = "wifi", _("Wi-Fi")
        FOOD = "food", _("Food and drinks")
        ACCESSIBLE = "accessible", _("Wheelchair access")
        IMAX = "imax", _("IMAX")
        DOLBY = "dolby", _("Dolby Atmos")
        GLASSES_3D = "3d_glasses", _("3D glasses")
        LOCKERS = "lockers", _("Lockers")
        CHILD_FRIENDLY = "child_friendly", _("Child friendly")

    organizer = models.ForeignKey(Organizer, on_delete=models.PROTECT, related_name="venues")
    name = models.CharField(_("name"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=120, blank=True)
    city = models.CharField(_("city"), max_length=60, db_index=True)
    city_en = models.CharField(_("city (English)"), max_length=60, blank=True)
    district = models.CharField(_("district"), max_length=60, blank=True)
    address = models.CharField(_("address"), max_length=255)
    address_en = models.CharField(_("address (English)"), max_length=255, blank=True)
    timezone = models.CharField(
        _("time zone"), max_length=64, default="Asia/Shanghai", validators=[validate_timezone]
    )
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    transport_info = models.TextField(_("how to get there"), blank=True)
    transport_info_en = models.TextField(_("how to get there (English)"), blank=True)
    services = models.JSONField(_("services"), default=list, blank=True)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("venue")
        verbose_name_plural = _("venues")
        ordering = ["city", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organizer", "name"], name="venue_name_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} · {self.city}"

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def service_labels(self) -> list[str]:
        labels = dict(self.Service.choices)
        return [str(labels.get(code, code)) for code in self.services]


class Hall(Localized, TimestampedModel):
    venue = models.ForeignKey(Venue, on_delete=models.CASCADE, related_name="halls")
    name = models.CharField(_("name"), max_length=80)
    name_en = models.CharField(_("name (English)"), max_length=80, blank=True)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("hall")
        verbose_name_plural = _("halls")
        ordering = ["venue", "sort_order", "name"]
        constraints = [models.UniqueConstraint(fields=["venue", "name"], name="hall_name_unique")]

    def __str__(self) -> str:
        return f"{self.venue.name} · {self.name}"

    def current_seat_map(self) -> SeatMap | None:
        return self.seat_maps.order_by("-version").first()


class SeatType(models.TextChoices):
    STANDARD = "standard", _("Standard")
    VIP = "vip", _("VIP")
    COUPLE = "couple", _("Couple seat")
    ACCESSIBLE = "accessible", _("Accessible")
    OBSTRUCTED = "obstructed", _("Obstructed view")


class SeatMap(TimestampedModel):
    """One immutable version of a hall's layout. Editing a map creates the next version, so a
    session that already sells keeps the version it was created with (CAT-2)."""

    class Source(models.TextChoices):
        JSON = "json", _("JSON import")
        CSV = "csv", _("CSV import")
        GENERATOR = "generator", _("Generator")
        COPY = "copy", _("Copy")

    hall = models.ForeignKey(Hall, on_delete=models.CASCADE, related_name="seat_maps")
    version = models.PositiveIntegerField(_("version"))
    name = models.CharField(_("name"), max_length=120, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    seat_count = models.PositiveIntegerField(_("seats"), default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    stage_label = models.CharField(_("stage label"), max_length=40, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("seat map")
        verbose_name_plural = _("seat maps")
        ordering = ["hall", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["hall", "version"], name="seatmap_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.hall} · v{self.version}"


class Section(Localized, models.Model):
    seat_map = models.ForeignKey(SeatMap, on_delete=models.CASCADE, related_name="sections")
    code = models.CharField(_("code"), max_length=20)
    name = models.CharField(_("name"), max_length=60)
    name_en = models.CharField(_("name (English)"), max_length=60, blank=True)
    entrance = models.CharField(_("entrance"), max_length=60, blank=True)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("section")
        verbose_name_plural = _("sections")
        ordering = ["seat_map", "sort_order", "code"]
        constraints = [
            models.UniqueConstraint(fields=["seat_map", "code"], name="section_code_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Seat(models.Model):
    """A seat of one seat-map version. `code` ("<section>-<row>-<number>") is its stable name."""

    seat_map = models.ForeignKey(SeatMap, on_delete=models.CASCADE, related_name="seats")
    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="seats")
    row_label = models.CharField(_("row"), max_length=10)
    number_label = models.CharField(_("number"), max_length=10)
    code = models.CharField(_("code"), max_length=48)
    x = models.IntegerField()
    y = models.IntegerField()
    seat_type = models.CharField(
        _("seat type"), max_length=16, choices=SeatType.choices, default=SeatType.STANDARD
    )
    is_blocked = models.BooleanField(_("blocked"), default=False)
    pair = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("seat")
        verbose_name_plural = _("seats")
        constraints = [
            models.UniqueConstraint(fields=["seat_map", "code"], name="seat_code_unique"),
            models.UniqueConstraint(fields=["seat_map", "x", "y"], name="seat_position_unique"),
            models.CheckConstraint(
                condition=Q(seat_type__in=[t.value for t in SeatType]),
                name="seat_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class Category(Localized, models.Model):
    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=40)
    name_en = models.CharField(_("name (English)"), max_length=40, blank=True)
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["sort_order", "slug"]

    def __str__(self) -> str:
        return self.name


class EventKind(models.TextChoices):
    FILM = "film", _("Film")
    PERFORMANCE = "performance", _("Performance")
    SPORT = "sport", _("Sport")
    SCENIC = "scenic", _("Scenic area / exhibition")
    TRIP = "trip", _("Trip")


class Event(Localized, PublicIdModel, TimestampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PUBLISHED = "published", _("Published")
        CANCELLED = "cancelled", _("Cancelled")

    organizer = models.ForeignKey(Organizer, on_delete=models.PROTECT, related_name="events")
    code = models.SlugField(
        _("code"), max_length=60, help_text=_("Your own reference, unique per organizer.")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=EventKind.choices)
    category = models.ForeignKey(
        Category, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    title = models.CharField(_("title"), max_length=200)
    title_en = models.CharField(_("title (English)"), max_length=200, blank=True)
    subtitle = models.CharField(_("subtitle"), max_length=200, blank=True)
    description = models.TextField(_("description"), blank=True)
    description_en = models.TextField(_("description (English)"), blank=True)
    performers = models.CharField(
        _("performers / cast"), max_length=300, blank=True, help_text=_("Comma separated.")
    )
    tags = models.CharField(_("tags"), max_length=200, blank=True, help_text=_("Comma separated."))
    duration_minutes = models.PositiveIntegerField(_("duration (minutes)"), null=True, blank=True)
    age_advice = models.CharField(_("age advice / rating"), max_length=40, blank=True)
    poster = models.FileField(_("poster"), upload_to="posters/", blank=True)
    poster_color = models.CharField(_("poster colour"), max_length=7, default="#c2410c")
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    popularity = models.IntegerField(
        _("popularity"), default=0, help_text=_("Higher is hotter; drives the 'hot' list.")
    )
    # Maintained by catalog.services: title/performers/venues as words, pinyin and initials.
    search_text = models.TextField(editable=False, default="")

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-popularity", "title"]
        constraints = [
            models.UniqueConstraint(fields=["organizer", "code"], name="event_code_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=[k.value for k in EventKind]), name="event_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "published", "cancelled"]),
                name="event_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["status", "-popularity"], name="event_status_pop_idx")]

    def __str__(self) -> str:
        return self.title

    def performer_list(self) -> list[str]:
        return [p.strip() for p in self.performers.split(",") if p.strip()]

    def tag_list(self) -> list[str]:
        return [t.strip() for t in self.tags.split(",") if t.strip()]


class FilmDetails(models.Model):
    class Format(models.TextChoices):
        F2D = "2D", "2D"
        F3D = "3D", "3D"
        IMAX = "IMAX", "IMAX"
        IMAX3D = "IMAX 3D", "IMAX 3D"
        DOLBY = "Dolby Cinema", "Dolby Cinema"

    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="film")
    original_title = models.CharField(_("original title"), max_length=200, blank=True)
    director = models.CharField(_("director"), max_length=120, blank=True)
    language = models.CharField(_("language"), max_length=40, blank=True)
    formats = models.CharField(_("formats"), max_length=80, blank=True, help_text="2D, 3D, IMAX")
    release_date = models.DateField(_("release date"), null=True, blank=True)
    score = models.DecimalField(
        _("score"),
        max_digits=3,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
    )

    class Meta:
        verbose_name = _("film details")
        verbose_name_plural = _("film details")

    def __str__(self) -> str:
        return f"{self.event}"


class SportDetails(models.Model):
    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="sport")
    league = models.CharField(_("league"), max_length=80, blank=True)
    home_team = models.CharField(_("home"), max_length=80, blank=True)
    away_team = models.CharField(_("away"), max_length=80, blank=True)

    class Meta:
        verbose_name = _("sport details")
        verbose_name_plural = _("sport details")

    def __str__(self) -> str:
        return f"{self.event}"


class ScenicDetails(models.Model):
    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="scenic")
    opening_hours = models.CharField(_("opening hours"), max_length=120, blank=True)
    entry_notes = models.TextField(_("entry notes"), blank=True)

    class Meta:
        verbose_name = _("scenic details")
        verbose_name_plural = _("scenic details")

    def __str__(self) -> str:
        return f"{self.event}"


class TripDetails(models.Model):
    class Mode(models.TextChoices):
        FLIGHT = "flight", _("Flight")
        FERRY = "ferry", _("Ferry")
        COACH = "coach", _("Coach")
        RAIL = "rail", _("Rail")

    event = models.OneToOneField(Event, on_delete=models.CASCADE, related_name="trip")
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices)
    carrier = models.CharField(_("carrier"), max_length=80, blank=True)
    route_code = models.CharField(_("flight / route number"), max_length=20, blank=True)
    origin = models.CharField(_("origin"), max_length=60)
    origin_code = models.CharField(_("origin code"), max_length=8, blank=True)
    destination = models.CharField(_("destination"), max_length=60)
    destination_code = models.CharField(_("destination code"), max_length=8, blank=True)

    class Meta:
        verbose_name = _("trip details")
        verbose_name_plural = _("trip details")

    def __str__(self) -> str:
        return f"{self.origin} → {self.destination}"


class CapacityMode(models.TextChoices):
    RESERVED = "reserved", _("Reserved seating")
    GENERAL = "general", _("General admission")
    DAILY = "daily", _("Daily capacity")


class WaitlistMode(models.TextChoices):
    OFF = "off", _("No waitlist")
    OFFER = "offer", _("Offer returned seats to the next in line")
    PREPAID = "prepaid", _("Prepaid: bought automatically in queue order")


class Session(PublicIdModel, TimestampedModel):
    """A showtime / performance / match day / departure. Times are stored in UTC and shown in
    the venue's time zone."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        CANCELLED = "cancelled", _("Cancelled")

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="sessions")
    venue = models.ForeignKey(Venue, on_delete=models.PROTECT, related_name="sessions")
    hall = models.ForeignKey(
        Hall, on_delete=models.PROTECT, null=True, blank=True, related_name="sessions"
    )
    seat_map = models.ForeignKey(
        SeatMap,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sessions",
        help_text=_("Pinned seat-map version; later edits of the hall's map do not affect it."),
    )
    code = models.SlugField(_("code"), max_length=60, help_text=_("Unique within the event."))
    starts_at = models.DateTimeField(_("starts"), db_index=True)
    ends_at = models.DateTimeField(_("ends"))
    sales_open_at = models.DateTimeField(_("sales open"))
    sales_close_at = models.DateTimeField(_("sales close"))
    capacity_mode = models.CharField(
        _("capacity mode"), max_length=10, choices=CapacityMode.choices
    )
    capacity = models.PositiveIntegerField(
        _("capacity"),
        null=True,
        blank=True,
        help_text=_("Admissions for general admission, or per day for daily capacity."),
    )
    language_note = models.CharField(_("language / format"), max_length=60, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.SCHEDULED
    )
    rotating_qr = models.BooleanField(
        _("rotating QR"),
        default=False,
        help_text=_(
            "E-tickets show a code that changes every 15 seconds; screenshots stop working."
        ),
    )
    reentry_allowed = models.BooleanField(
        _("re-entry allowed"),
        default=False,
        help_text=_("A ticket scanned out at a gate may come in again."),
    )
    transfers_allowed = models.BooleanField(
        _("transfers allowed"),
        default=False,
        help_text=_("Holders may hand their tickets to someone else."),
    )
    transfer_cutoff_hours = models.PositiveIntegerField(
        _("transfers close (hours before the start)"), default=2
    )
    waitlist_mode = models.CharField(
        _("waitlist when sold out"),
        max_length=8,
        choices=WaitlistMode.choices,
        default=WaitlistMode.OFF,
    )

    class Meta:
        verbose_name = _("session")
        verbose_name_plural = _("sessions")
        ordering = ["starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["event", "code"], name="session_code_unique"),
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")), name="session_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(sales_close_at__gt=models.F("sales_open_at")),
                name="session_sales_window_order",
            ),
            models.CheckConstraint(
                condition=Q(capacity_mode__in=["reserved", "general", "daily"]),
                name="session_capacity_mode_valid",
            ),
            models.CheckConstraint(
                condition=~Q(capacity_mode="reserved") | Q(seat_map__isnull=False),
                name="session_reserved_has_seat_map",
            ),
            models.CheckConstraint(
                # NULL > 0 is unknown, and CHECK passes unknown: test for NULL explicitly.
                condition=Q(capacity_mode="reserved")
                | (Q(capacity__isnull=False) & Q(capacity__gt=0)),
                name="session_quota_has_capacity",
            ),
        ]
        indexes = [
            models.Index(fields=["event", "starts_at"], name="session_event_start_idx"),
            models.Index(fields=["venue", "starts_at"], name="session_venue_start_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event.title} · {self.local_starts_at:%Y-%m-%d %H:%M}"

    @property
    def local_starts_at(self) -> datetime:
        return timezone.localtime(self.starts_at, self.venue.tzinfo)

    @property
    def local_ends_at(self) -> datetime:
        return timezone.localtime(self.ends_at, self.venue.tzinfo)

    def sales_state(self, at: datetime | None = None) -> str:
        """ "cancelled", "not_open", "on_sale" or "closed" at `at` (default now)."""
        at = at or timezone.now()
        if self.status == self.Status.CANCELLED or self.event.status == Event.Status.CANCELLED:
            return "cancelled"
        if at < self.sales_open_at:
            return "not_open"
        if at >= self.sales_close_at:
            return "closed"
        return "on_sale"


class Audience(models.TextChoices):
    ANY = "any", _("Everyone")
    ADULT = "adult", _("Adult")
    CHILD = "child", _("Child")
    STUDENT = "student", _("Student")
    SENIOR = "senior", _("Senior")
    GROUP = "group", _("Group")
    VIP_PACKAGE = "vip_package", _("VIP package")


class PriceTier(Localized, models.Model):
    """票档: a price for a seat type and/or section (reserved) or a quota (GA, daily, cabin)."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="price_tiers")
    code = models.SlugField(_("code"), max_length=40)
    name = models.CharField(_("name"), max_length=60)
    name_en = models.CharField(_("name (English)"), max_length=60, blank=True)
    audience = models.CharField(
        _("audience"), max_length=16, choices=Audience.choices, default=Audience.ANY
    )
    price = models.DecimalField(_("price"), max_digits=12, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=3, default=default_currency)
    seat_type = models.CharField(
        _("seat type"),
        max_length=16,
        choices=SeatType.choices,
        blank=True,
        help_text=_("Reserved seating: the seat type this price applies to (blank: any)."),
    )
    section_codes = models.CharField(
        _("sections"),
        max_length=500,
        blank=True,
        help_text=_(
            "Reserved seating: the section codes this price applies to, comma separated "
            "(blank: any)."
        ),
    )
    capacity = models.PositiveIntegerField(
        _("quota"),
        null=True,
        blank=True,
        help_text=_("General admission / cabins: how many of this tier may be sold."),
    )
    min_per_order = models.PositiveIntegerField(_("minimum per order"), default=1)
    max_per_order = models.PositiveIntegerField(_("maximum per order"), default=6)
    color = models.CharField(_("colour"), max_length=7, default="#2563eb")
    description = models.CharField(_("description"), max_length=200, blank=True)
    sort_order = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(_("on sale"), default=True)

    class Meta:
        verbose_name = _("price tier")
        verbose_name_plural = _("price tiers")
        ordering = ["session", "sort_order", "price"]
        constraints = [
            models.UniqueConstraint(fields=["session", "code"], name="tier_code_unique"),
            models.CheckConstraint(condition=Q(price__gte=0), name="tier_price_not_negative"),
            models.CheckConstraint(
                condition=Q(min_per_order__gte=1) & Q(max_per_order__gte=models.F("min_per_order")),
                name="tier_order_limits_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.money}"

    @property
    def money(self) -> Money:
        return Money(Decimal(self.price), self.currency)

    def section_list(self) -> list[str]:
        return split_codes(self.section_codes)


class CatalogChange(models.Model):
    """Append-only change log of catalog edits (CAT-7): who changed what, when."""

    organizer = models.ForeignKey(Organizer, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=60)  # e.g. piaowu.catalog.session.created
    object_type = models.CharField(max_length=40)
    object_ref = models.CharField(max_length=64)
    summary = models.CharField(max_length=255)
    changes = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("catalog change")
        verbose_name_plural = _("catalog changes")
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_ref}"
