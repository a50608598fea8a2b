"""Money is a Decimal with a currency; never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings

CURRENCY_EXPONENT = {"CNY": 2, "HKD": 2, "USD": 2, "EUR": 2, "JPY": 0, "TWD": 0, "MOP": 2}
CURRENCY_SYMBOL = {"CNY": "¥", "HKD": "HK$", "USD": "$", "EUR": "€", "JPY": "¥", "TWD": "NT$"}


def default_currency() -> str:
    return str(getattr(settings, "PIAOWU_DEFAULT_CURRENCY", "CNY"))


def parse_amount(raw: object) -> Decimal:
    """Parse a price from user input; raises ValueError with a readable reason."""
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a number: {raw!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a number: {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal")
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError(f"bad currency code {self.currency!r}")

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str | None = None) -> Money:
        return cls(parse_amount(amount), currency or default_currency()).quantized()

    def quantized(self) -> Money:
        places = CURRENCY_EXPONENT.get(self.currency, 2)
        quantum = Decimal(1).scaleb(-places)
        return Money(self.amount.quantize(quantum, rounding=ROUND_HALF_UP), self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        return Money(self.amount * factor, self.currency).quantized()

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __str__(self) -> str:
        symbol = CURRENCY_SYMBOL.get(self.currency)
        amount = self.quantized().amount
        return f"{symbol}{amount:,}" if symbol else f"{amount:,} {self.currency}"
