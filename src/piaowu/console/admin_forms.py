"""Forms of the operator console's admin tools. They parse input; the services decide."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from piaowu.accounts.models import Organizer
from piaowu.catalog.models import CapacityMode, Hall, Session, Venue
from piaowu.catalog.seatmaps import SEAT_SIZE, RectBlock

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
WEEKDAYS = [
    (0, _("Monday")),
    (1, _("Tuesday")),
    (2, _("Wednesday")),
    (3, _("Thursday")),
    (4, _("Friday")),
    (5, _("Saturday")),
    (6, _("Sunday")),
]


def parse_int_list(raw: str) -> tuple[int, ...]:
    """ "3, 7 12" → (3, 7, 12); raises ValidationError on anything that is not a number ≥ 1."""
    values: list[int] = []
    for part in re.split(r"[,\s，]+", raw.strip()):
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise forms.ValidationError(
                _("Use whole numbers of 1 or more separated by commas (got %(value)s)."),
                params={"value": part},
            )
        values.append(int(part))
    return tuple(sorted(set(values)))


def parse_times(raw: str) -> list[dt.time]:
    """ "19:30, 14:00" → [14:00, 19:30]."""
    times: list[dt.time] = []
    for part in re.split(r"[,\s，]+", raw.strip()):
        if not part:
            continue
        try:
            times.append(dt.time.fromisoformat(part if len(part) > 4 else f"0{part}"))
        except ValueError as exc:
            raise forms.ValidationError(
                _("Use times like 19:30 separated by commas (got %(value)s)."),
                params={"value": part},
            ) from exc
    if not times:
        raise forms.ValidationError(_("Give at least one start time."))
    return sorted(set(times))


def read_upload(upload: Any) -> bytes:
    if upload.size > MAX_UPLOAD_BYTES:
        raise forms.ValidationError(
            _("The file is too big (at most %(mb)d MB)."),
            params={"mb": MAX_UPLOAD_BYTES // (1024 * 1024)},
        )
    return bytes(upload.read())


class SeatMapImportForm(forms.Form):
    FORMATS = [("", _("From the file name")), ("json", "JSON"), ("csv", "CSV")]

    file = forms.FileField(label=_("Seat-map file"))
    fmt = forms.ChoiceField(label=_("Format"), choices=FORMATS, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is None:
            return data
        fmt = data.get("fmt") or Path(upload.name or "").suffix.lower().lstrip(".")
        if fmt not in {"json", "csv"}:
            raise forms.ValidationError(
                _("Choose the format: the file name does not end in .json or .csv.")
            )
        data["fmt"] = fmt
        data["content"] = read_upload(upload)
        return data


class SeatMapGenerateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120, required=False)
    stage = forms.CharField(label=_("Stage label"), max_length=40, required=False)
    sections = forms.CharField(
        label=_("Sections"),
        widget=forms.Textarea(attrs={"rows": 3}),
        initial="A 池座",
        help_text=_(
            "One section per line: its code, a space, its name. Sections are placed side by "
            "side, each with the rows and seats below."
        ),
    )
    rows = forms.IntegerField(label=_("Rows"), min_value=1, max_value=200, initial=10)
    seats_per_row = forms.IntegerField(
        label=_("Seats per row"), min_value=1, max_value=300, initial=20
    )
    aisles_after = forms.CharField(
        label=_("Aisles after seat numbers"),
        required=False,
        help_text=_("For example: 5, 15"),
    )
    vip_rows = forms.CharField(
        label=_("VIP rows"), required=False, help_text=_("For example: 4, 5")
    )
    couple_rows = forms.CharField(
        label=_("Couple rows"), required=False, help_text=_("Seats of these rows sell in pairs.")
    )

    def clean_sections(self) -> list[tuple[str, str]]:
        result: list[tuple[str, str]] = []
        for line in str(self.cleaned_data["sections"]).splitlines():
            line = line.strip()
            if not line:
                continue
            code, _sep, name = line.partition(" ")
            result.append((code.strip(), name.strip() or code.strip()))
        if not result:
            raise forms.ValidationError(_("Give at least one section."))
        return result

    def clean_aisles_after(self) -> tuple[int, ...]:
        return parse_int_list(self.cleaned_data.get("aisles_after") or "")

    def clean_vip_rows(self) -> tuple[int, ...]:
        return parse_int_list(self.cleaned_data.get("vip_rows") or "")

    def clean_couple_rows(self) -> tuple[int, ...]:
        return parse_int_list(self.cleaned_data.get("couple_rows") or "")

    def blocks(self) -> list[RectBlock]:
        """One rectangular block per section, side by side with a gap of two seats."""
        data = self.cleaned_data
        seats_per_row: int = data["seats_per_row"]
        aisles: tuple[int, ...] = data["aisles_after"]
        pitch = SEAT_SIZE * 6 // 5
        block_width = (seats_per_row + len(aisles) + 2) * pitch
        return [
            RectBlock(
                section=code,
                name=name,
                rows=data["rows"],
                seats_per_row=seats_per_row,
                origin_x=index * block_width,
                aisles_after=aisles,
                vip_rows=data["vip_rows"],
                couple_rows=data["couple_rows"],
            )
            for index, (code, name) in enumerate(data["sections"])
        ]


class OrganizerChoiceMixin(forms.Form):
    organizer = forms.ModelChoiceField(label=_("Organizer"), queryset=Organizer.objects.none())

    def __init__(self, *args: Any, organizers: QuerySet[Organizer], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["organizer"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = organizers
        if len(organizers) == 1:
            field.initial = organizers[0].pk


class BatchImportForm(OrganizerChoiceMixin):
    FORMATS = [("", _("From the file name")), ("csv", "CSV"), ("xlsx", "XLSX")]

    file = forms.FileField(label=_("Events and sessions file"))
    fmt = forms.ChoiceField(label=_("Format"), choices=FORMATS, required=False)
    dry_run = forms.BooleanField(
        label=_("Dry run"),
        required=False,
        initial=True,
        help_text=_("Only check the file and show what would change; nothing is written."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is None:
            return data
        fmt = data.get("fmt") or Path(upload.name or "").suffix.lower().lstrip(".")
        if fmt not in {"csv", "xlsx"}:
            raise forms.ValidationError(
                _("Choose the format: the file name does not end in .csv or .xlsx.")
            )
        data["fmt"] = fmt
        data["content"] = read_upload(upload)
        return data


class ExportForm(OrganizerChoiceMixin):
    fmt = forms.ChoiceField(label=_("Format"), choices=[("csv", "CSV"), ("xlsx", "XLSX")])


class RecurrenceForm(forms.Form):
    venue = forms.ModelChoiceField(label=_("Venue"), queryset=Venue.objects.none())
    hall = forms.ModelChoiceField(label=_("Hall"), queryset=Hall.objects.none(), required=False)
    first_date = forms.DateField(
        label=_("First date"), widget=forms.DateInput(attrs={"type": "date"})
    )
    last_date = forms.DateField(
        label=_("Last date"), widget=forms.DateInput(attrs={"type": "date"})
    )
    times = forms.CharField(
        label=_("Start times"),
        help_text=_("Local time at the venue, for example: 14:00, 19:30"),
    )
    weekdays = forms.TypedMultipleChoiceField(
        label=_("Weekdays"),
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Leave empty for every day."),
    )
    tier_template = forms.ModelChoiceField(
        label=_("Copy price tiers from"), queryset=Session.objects.none()
    )
    capacity_mode = forms.ChoiceField(label=_("Capacity mode"), choices=CapacityMode.choices)
    capacity = forms.IntegerField(label=_("Capacity"), min_value=1, required=False)
    sales_open_days_before = forms.IntegerField(
        label=_("Sales open (days before)"),
        min_value=0,
        required=False,
        help_text=_("Leave empty to open sales now."),
    )
    sales_close_minutes_before = forms.IntegerField(
        label=_("Sales close (minutes before start)"), min_value=0, initial=0
    )

    def __init__(
        self,
        *args: Any,
        venues: QuerySet[Venue],
        halls: QuerySet[Hall],
        sessions: QuerySet[Session],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        for name, queryset in (("venue", venues), ("hall", halls), ("tier_template", sessions)):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = queryset

    def clean_times(self) -> list[dt.time]:
        return parse_times(str(self.cleaned_data.get("times") or ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, last = data.get("first_date"), data.get("last_date")
        if first and last and last < first:
            self.add_error("last_date", _("The last date is before the first date."))
        return data


class SessionCopyForm(forms.Form):
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(
        label=_("Start time"),
        help_text=_("Local time at the venue."),
        widget=forms.TimeInput(attrs={"type": "time"}),
    )

    def starts_at(self, tz: dt.tzinfo) -> dt.datetime:
        return dt.datetime.combine(self.cleaned_data["date"], self.cleaned_data["time"], tzinfo=tz)
