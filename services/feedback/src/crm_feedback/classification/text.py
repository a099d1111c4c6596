"""Pure rules about a piece of free text: what may be classified, its language, and how a
classifier's labels meet the contract's enums. No sklearn, no gRPC, no SQL."""

from __future__ import annotations

import re

from crmkit.validation import Violations

MAX_TEXT = 4000

# Han ideographs (CJK unified, extension A, compatibility) against Latin letters.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")

LANGUAGES = ("en", "zh")

# crm.feedback.v1.Sentiment by the short label a sentiment classifier is trained on.
SENTIMENTS = {"negative": 1, "neutral": 2, "positive": 3}

# crm.feedback.v1.ComplaintCategory without its prefix (enum mirror; tests check it against the proto).
CATEGORIES = {
    "SERVICE_ATTITUDE": 1, "WAIT_TIME_AND_FACILITIES": 2, "FEES_AND_CHARGES": 3, "ACCOUNT_OPERATIONS": 4,
    "CARDS": 5, "LOANS_AND_CREDIT": 6, "PAYMENTS_AND_TRANSFERS": 7, "WEALTH_AND_INVESTMENT": 8,
    "DIGITAL_CHANNELS": 9, "MARKETING_CONTACT": 10, "PRIVACY_AND_DATA": 11, "FRAUD_AND_SECURITY": 12, "OTHER": 13,
}


def check_text(text: str, field: str, v: Violations) -> str:
    """The trimmed text, or a violation naming `field`: empty, whitespace-only or over MAX_TEXT."""
    trimmed = text.strip()
    if not trimmed:
        v.add(field, "is required: empty or whitespace-only text cannot be classified")
    elif len(trimmed) > MAX_TEXT:
        v.add(field, f"must be at most {MAX_TEXT} characters after trimming (got {len(trimmed)})")
    return trimmed


def check_language(language_code: str, v: Violations) -> None:
    v.check(language_code in ("", *LANGUAGES), "language_code", "must be `zh`, `en` or empty (detect it)")


def detect_language(text: str) -> str:
    """`zh` when Han characters are at least as many as Latin letters (and there is one), else `en`."""
    han = len(_HAN.findall(text))
    return "zh" if han and han >= len(_LATIN.findall(text)) else "en"


def category_of(label: str) -> int:
    """The ComplaintCategory a category label names (any case, with or without the enum's
    prefix), 0 when the label is outside the taxonomy (e.g. a finer intent)."""
    key = label.strip().upper().removeprefix("COMPLAINT_CATEGORY_").replace(" ", "_").replace("-", "_")
    return CATEGORIES.get(key, 0)


def sentiment_label(label: str) -> str:
    """A sentiment label in its short form (`negative`, ...), "" when it is not one."""
    key = label.strip().lower().removeprefix("sentiment_")
    return key if key in SENTIMENTS else ""
