"""The Chinese catalog is complete, and the committed .mo says what the .po says."""

from __future__ import annotations

import ast
import gettext
from pathlib import Path

import piaowu

LOCALE = Path(piaowu.__file__).parent / "locale"
PO = LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.mo"


def _entries() -> list[dict[str, str]]:
    """msgctxt/msgid/msgstr of each non-obsolete entry (plural forms: msgstr[0])."""
    entries: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in [*PO.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if "msgid" in current:
                entries.append(current)
            current, key = {}, ""
        elif line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                current["fuzzy"] = "yes"
        elif line.startswith('"'):
            current[key] += ast.literal_eval(line)
        else:
            key, _, value = line.partition(" ")
            key = "msgstr" if key == "msgstr[0]" else key
            current[key] = ast.literal_eval(value)
    return [e for e in entries if e["msgid"]]


def test_every_message_is_translated_and_none_is_fuzzy() -> None:
    entries = _entries()
    assert len(entries) > 300
    untranslated = [e["msgid"] for e in entries if not e.get("msgstr")]
    fuzzy = [e["msgid"] for e in entries if e.get("fuzzy")]
    assert untranslated == []
    assert fuzzy == []


def test_the_compiled_catalog_matches_the_source() -> None:
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = []
    for entry in _entries():
        msgid = entry["msgid"]
        if "msgctxt" in entry:
            got = compiled.pgettext(entry["msgctxt"], msgid)
        elif "msgid_plural" in entry:
            got = compiled.ngettext(msgid, entry["msgid_plural"], 1)
        else:
            got = compiled.gettext(msgid)
        if got != entry["msgstr"]:
            stale.append(msgid)
    assert stale == [], "run compilemessages (see CONTRIBUTING.md)"
