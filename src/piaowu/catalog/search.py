"""Chinese-aware search text: words, full pinyin and pinyin initials.

An event's `search_text` holds, lower-cased, its raw texts plus each Chinese text as pinyin
("liudehua") and as initials ("ldh"). A query matches when every term is a substring of it, so
"刘德华", "liudehua", "liu dehua" and "ldh" all find 刘德华's concerts. Chinese query terms are
cut into words with jieba first, so "刘德华演唱会" needs "刘德华" and "演唱会", not the exact run.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import jieba
from pypinyin import Style, lazy_pinyin

jieba.setLogLevel(logging.WARNING)

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SPLIT = re.compile(r"[\s,，、;；/|]+")
_PUNCT_ONLY = re.compile(r"^[\W_]+$")
MAX_TERMS = 8
# Function words that a Chinese query may carry but a title need not ("周杰伦的演唱会").
_STOPWORDS = frozenset(["的", "了", "和", "与", "及", "在", "之", "场", "票", "门票"])


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().strip()


def _pinyin_forms(text: str) -> tuple[str, str]:
    syllables = lazy_pinyin(text, errors="default")
    initials = lazy_pinyin(text, style=Style.FIRST_LETTER, errors="default")
    squash = "".join
    return re.sub(r"\s+", "", squash(syllables)), re.sub(r"\s+", "", squash(initials))


def build_search_text(texts: Iterable[str]) -> str:
    """Index form of `texts`: each text, then pinyin and initials of the Chinese ones."""
    parts: list[str] = []
    seen: set[str] = set()
    for text in texts:
        value = _normalize(text or "")
        if not value or value in seen:
            continue
        seen.add(value)
        parts.append(value)
        if has_cjk(value):
            # Each comma-separated piece separately too, so "ldh" matches within a cast list.
            for piece in [value, *_SPLIT.split(value)]:
                if piece and has_cjk(piece):
                    full, initials = _pinyin_forms(piece)
                    parts.extend([full, initials])
    return " | ".join(dict.fromkeys(parts))


@lru_cache(maxsize=2048)
def query_terms(query: str) -> tuple[str, ...]:
    """The substrings a query needs. Empty when the query has nothing searchable."""
    terms: list[str] = []
    for chunk in _SPLIT.split(_normalize(query)):
        if not chunk or _PUNCT_ONLY.match(chunk):
            continue
        if has_cjk(chunk) and len(chunk) > 2:
            words = [w for w in jieba.lcut_for_search(chunk) if w.strip()]
            # lcut_for_search returns sub-words first; keep the longest that cover the chunk.
            words = [w for w in words if not any(w != o and w in o for o in words)]
            terms.extend(w for w in words if not _PUNCT_ONLY.match(w) and w not in _STOPWORDS)
        else:
            terms.append(chunk)
    return tuple(dict.fromkeys(terms))[:MAX_TERMS]


def warm_up() -> None:
    """Load jieba's dictionary now rather than on the first customer's search."""
    jieba.initialize()
