from decimal import Decimal

from piaowu.catalog.models import Audience, PriceTier
from piaowu.catalog.selectors import tier_for_seat


def _tier(code: str, price: str, **kw: str) -> PriceTier:
    return PriceTier(code=code, name=code, price=Decimal(price), **kw)


TIERS = [
    _tier("standard", "45", seat_type="standard"),
    _tier("vip", "65", seat_type="vip"),
    _tier("student", "30", seat_type="standard", audience=Audience.STUDENT),
    _tier("balcony", "180", section_codes="BALCONY,GALLERY"),
    _tier("balcony-vip", "220", section_codes="BALCONY", seat_type="vip"),
    _tier("anything", "99"),
]


def _code(section: str, seat_type: str) -> str | None:
    tier = tier_for_seat(TIERS, section_code=section, seat_type=seat_type)
    return tier.code if tier else None


def test_the_most_specific_tier_wins() -> None:
    assert _code("BALCONY", "vip") == "balcony-vip"
    assert _code("BALCONY", "standard") == "balcony"
    assert _code("STALLS", "vip") == "vip"


def test_a_concession_never_becomes_the_seats_base_price() -> None:
    assert _code("STALLS", "standard") == "standard"


def test_a_catch_all_tier_prices_seats_nothing_else_matches() -> None:
    assert _code("STALLS", "accessible") == "anything"
    assert tier_for_seat(TIERS[:2], section_code="STALLS", seat_type="accessible") is None
