from decimal import Decimal

import pytest

from piaowu.core.money import Money


def test_money_rounds_half_up_to_the_currency_exponent() -> None:
    assert Money.of("10.005", "CNY").amount == Decimal("10.01")
    assert Money.of("1000.5", "JPY").amount == Decimal("1001")


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot combine CNY with HKD"):
        Money.of("1", "CNY") + Money.of("1", "HKD")


@pytest.mark.parametrize("raw", ["abc", "", "NaN", "Infinity"])
def test_money_refuses_what_is_not_a_number(raw: str) -> None:
    with pytest.raises(ValueError, match="not a number"):
        Money.of(raw)


def test_money_arithmetic_and_display() -> None:
    total = Money.of("45", "CNY") * 3 + Money.of("0.50", "CNY")
    assert total == Money(Decimal("135.50"), "CNY")
    assert str(total) == "¥135.50"
    assert str(Money.of("12", "SGD")) == "12.00 SGD"


def test_bad_currency_code_is_refused() -> None:
    with pytest.raises(ValueError, match="bad currency"):
        Money(Decimal("1"), "yuan")
