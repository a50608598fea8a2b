"""Help pages: the FAQ (public) and a signed-in customer's service cases — the list, a new case
(optionally about one of their orders), the conversation with a reply box, closing and rating.

Parse → call `aftersales.services.cases` / `aftersales.selectors.cases` → render. A refused
request shows the service's message on the form (status 400); someone else's case is the
site's 404, like an unknown id.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from piaowu.accounts.models import User
from piaowu.aftersales.models import Case
from piaowu.aftersales.selectors.cases import (
    case_can_reopen,
    case_get_for_customer,
    case_messages_for_customer,
    case_order_choices,
    case_zone,
    cases_for_customer,
    faq_entries,
)
from piaowu.aftersales.services.cases import (
    MAX_MESSAGE_LENGTH,
    MAX_RATING_COMMENT_LENGTH,
    MAX_SUBJECT_LENGTH,
    RATING_MAX,
    RATING_MIN,
    case_close_by_customer,
    case_message,
    case_open,
    case_rate,
    reopen_days,
)
from piaowu.core.errors import DomainError, NotFound
from piaowu.orders.models import Order

CASES_PAGE_SIZE = 20

# --- Forms (their shape only; the services decide) ---------------------------------------------


class CaseForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("What is it about?"), choices=Case.Kind.choices)
    order = forms.ChoiceField(label=gettext_lazy("Order"), required=False)
    subject = forms.CharField(label=gettext_lazy("Subject"), max_length=MAX_SUBJECT_LENGTH)
    message = forms.CharField(
        label=gettext_lazy("Your message"),
        max_length=MAX_MESSAGE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=gettext_lazy("Tell us what happened; with times, seats or amounts if it helps."),
    )

    def __init__(self, *args: Any, orders: list[Order], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["order"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", _("None / not about an order"))] + [
            (order.public_id, order_label(order)) for order in orders
        ]


class CaseMessageForm(forms.Form):
    message = forms.CharField(
        label=gettext_lazy("Your answer"),
        max_length=MAX_MESSAGE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class CaseRatingForm(forms.Form):
    rating = forms.TypedChoiceField(
        label=gettext_lazy("How did we do?"),
        coerce=int,
        choices=[(n, str(n)) for n in range(RATING_MAX, RATING_MIN - 1, -1)],
        widget=forms.RadioSelect,
    )
    comment = forms.CharField(
        label=gettext_lazy("Comment"),
        max_length=MAX_RATING_COMMENT_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


def order_label(order: Order) -> str:
    session = order.session
    start = session.local_starts_at
    return f"{order.code} · {session.event.tr('title')} · {start:%Y-%m-%d %H:%M}"


def _apply_error(form: forms.Form, exc: DomainError) -> None:
    """The service's refusal on its field (details.field) or on top of the form."""
    field = exc.details.get("field")
    form.add_error(
        field if isinstance(field, str) and field in form.fields else None, str(exc.message)
    )


# --- Helpers -------------------------------------------------------------------------------------


def _customer(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User) and user.is_authenticated  # login_required
    return user


def _own_case(request: HttpRequest, public_id: str) -> Case:
    try:
        return case_get_for_customer(public_id=public_id, customer=_customer(request))
    except NotFound as exc:
        raise Http404(str(exc.message)) from exc


def _render_case(
    request: HttpRequest,
    case: Case,
    *,
    message_form: CaseMessageForm | None = None,
    rating_form: CaseRatingForm | None = None,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    closed = case.state == Case.State.CLOSED
    can_write = not closed or case_can_reopen(case)
    context = {
        "case": case,
        "zone": case_zone(case),
        "conversation": case_messages_for_customer(case),
        "closed": closed,
        "can_write": can_write,
        "can_rate": closed and case.rating is None,
        "reopen_days": f"{reopen_days():g}",
        "message_form": message_form or (CaseMessageForm() if can_write else None),
        "rating_form": rating_form or CaseRatingForm(),
        "stars": range(RATING_MIN, RATING_MAX + 1),
        "problem": problem,
    }
    return render(request, "web/cases_detail.html", context, status=status)


# --- Pages ---------------------------------------------------------------------------------------


@require_GET
def help_page(request: HttpRequest) -> HttpResponse:
    """The FAQ, and the way to customer service."""
    return render(request, "web/faq.html", {"entries": faq_entries()})


@login_required
@require_GET
def my_cases(request: HttpRequest) -> HttpResponse:
    page = Paginator(cases_for_customer(_customer(request)), CASES_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "web/cases.html", {"page": page})


@login_required
@require_http_methods(["GET", "POST"])
def case_new(request: HttpRequest) -> HttpResponse:
    customer = _customer(request)
    orders = case_order_choices(customer)
    if request.method == "POST":
        form = CaseForm(request.POST, orders=orders)
        if form.is_valid():
            data = form.cleaned_data
            try:
                case = case_open(
                    customer=customer,
                    kind=data["kind"],
                    subject=data["subject"],
                    message=data["message"],
                    order_id=data["order"],
                )
            except DomainError as exc:
                _apply_error(form, exc)
            else:
                messages.success(
                    request,
                    _("Thank you. Your case %(number)s is open; we will answer here.")
                    % {"number": case.number},
                )
                return redirect("web:case", public_id=case.public_id)
    else:
        wanted = request.GET.get("order", "")
        initial: dict[str, str] = {}
        if any(order.public_id == wanted for order in orders):
            initial = {"order": wanted, "kind": Case.Kind.QUESTION}
        form = CaseForm(initial=initial, orders=orders)
    status = 400 if form.errors else 200
    return render(request, "web/cases_new.html", {"form": form}, status=status)


@login_required
@require_GET
def case_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    return _render_case(request, _own_case(request, public_id))


@login_required
@require_POST
def case_write(request: HttpRequest, public_id: str) -> HttpResponse:
    case = _own_case(request, public_id)
    form = CaseMessageForm(request.POST)
    if form.is_valid():
        try:
            case_message(case=case, customer=_customer(request), body=form.cleaned_data["message"])
        except DomainError as exc:
            _apply_error(form, exc)
        else:
            messages.success(request, _("Your message was sent."))
            return redirect("web:case", public_id=case.public_id)
    return _render_case(request, case, message_form=form, status=400)


@login_required
@require_POST
def case_close(request: HttpRequest, public_id: str) -> HttpResponse:
    case = _own_case(request, public_id)
    try:
        case_close_by_customer(case=case, customer=_customer(request))
    except DomainError as exc:
        messages.error(request, str(exc.message))
    else:
        messages.success(request, _("The case is closed. Please tell us how we did."))
    return redirect("web:case", public_id=case.public_id)


@login_required
@require_POST
def case_rate_view(request: HttpRequest, public_id: str) -> HttpResponse:
    case = _own_case(request, public_id)
    form = CaseRatingForm(request.POST)
    if form.is_valid():
        try:
            case_rate(
                case=case,
                customer=_customer(request),
                rating=form.cleaned_data["rating"],
                comment=form.cleaned_data["comment"],
            )
        except DomainError as exc:
            if exc.details.get("field") not in form.fields:
                # Rated already, or not closed (any more): nothing to correct on the form.
                return _render_case(request, case, problem=str(exc.message), status=400)
            _apply_error(form, exc)
        else:
            messages.success(request, _("Thank you for your rating."))
            return redirect("web:case", public_id=case.public_id)
    return _render_case(request, case, rating_form=form, status=400)
