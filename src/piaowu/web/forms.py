"""Forms of the customer site. They check the shape of input; rules live in the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _


class LoginForm(AuthenticationForm):
    """Django's login form with an e-mail field (User.USERNAME_FIELD is `email`)."""

    username = forms.EmailField(
        label=_("E-mail"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    error_messages = {
        "invalid_login": _("The e-mail address or password is not correct."),
        "inactive": _("This account is inactive."),
    }


class SignUpForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    display_name = forms.CharField(
        label=_("Display name"),
        max_length=80,
        required=False,
        help_text=_("Shown on your account; you may leave it empty."),
        widget=forms.TextInput(attrs={"autocomplete": "nickname"}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        help_text=_("At least 8 characters; not only digits and not a common password."),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords do not match."))
        return cleaned


PROVIDER_LABELS = {
    "sandbox": _("Sandbox (test payment)"),
    "alipay": _("Alipay"),
    "wechat": _("WeChat Pay"),
}


def provider_choices(providers: list[str]) -> list[tuple[str, str]]:
    """The enabled payment providers as (name, label) pairs, in the configured order."""
    return [(name, str(PROVIDER_LABELS.get(name, name))) for name in providers]


class PaymentChoiceForm(forms.Form):
    """The payment method (one of the enabled providers)."""

    provider = forms.ChoiceField(label=_("Payment method"), widget=forms.RadioSelect)

    def __init__(self, *args: Any, providers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["provider"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = provider_choices(providers)
        if providers:
            field.initial = providers[0]


class ContactForm(forms.Form):
    """The buyer's phone and e-mail, for checkout and redemption alike. Guests must give a phone
    (asked here so the page can say so before anything is written); what a valid phone is stays
    the checkout service's rule (`invalid_phone`), as does the final say on `contact_required`."""

    phone = forms.CharField(
        label=_("Mobile phone"),
        max_length=32,
        required=False,
        help_text=_("We use it to find your order again; nothing else."),
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )
    email = forms.EmailField(
        label=_("E-mail"),
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    def __init__(self, *args: Any, guest: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        phone = self.fields["phone"]
        phone.required = guest
        # The checkout service's own wording for a missing phone (`contact_required`).
        phone.error_messages["required"] = _(
            "Enter a phone number so you can find your order again."
        )
        if not guest:
            phone.help_text = _("Optional: the order is kept in your account.")


class CheckoutForm(ContactForm, PaymentChoiceForm):
    """Contact details and the payment method (`providers=`, `guest=`)."""

    field_order = ["phone", "email", "provider"]


class RedeemForm(ContactForm):
    """Step 1 is the code alone; step 2 (`redeeming`) adds the session and, for guests, the
    phone. Whether the code still works stays the redemption service's rule."""

    code = forms.CharField(
        label=_("Redemption code"),
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )
    session = forms.CharField(label=_("Session"), max_length=40, required=False)
    field_order = ["code", "session", "phone", "email"]

    def __init__(self, *args: Any, guest: bool, redeeming: bool, **kwargs: Any) -> None:
        super().__init__(*args, guest=guest, **kwargs)
        if not redeeming:
            self.fields["phone"].required = False  # step 1 asks for the code only
        else:
            self.fields["session"].required = True
            self.fields["session"].error_messages["required"] = _("Choose a session.")

    def clean_code(self) -> str:
        return str(self.cleaned_data["code"]).strip()


class OrderLookupForm(forms.Form):
    code = forms.CharField(
        label=_("Order code"),
        max_length=16,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "characters", "spellcheck": "false"}
        ),
    )
    phone = forms.CharField(
        label=_("Mobile phone given at checkout"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
    )
