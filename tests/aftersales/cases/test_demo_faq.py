"""The demo seeds the help page's FAQ once, in Chinese and English."""

from __future__ import annotations

import pytest
from django.utils import translation

from piaowu.aftersales.models import FaqEntry
from piaowu.aftersales.selectors.cases import faq_entries
from piaowu.cli.demo_data import DEMO_FAQ, seed_faq

pytestmark = pytest.mark.django_db


def test_seeding_the_faq_twice_creates_it_once() -> None:
    assert seed_faq() == len(DEMO_FAQ)
    assert seed_faq() == 0
    assert FaqEntry.objects.count() == len(DEMO_FAQ)
    with translation.override("en"):
        english = [item.question for item in faq_entries()]
    with translation.override("zh-hans"):
        chinese = [item.question for item in faq_entries()]
    assert english[0] == "How do I get a refund?"
    assert chinese[0] == "怎么退票？"
    assert len(english) == len(chinese) == len(DEMO_FAQ)
