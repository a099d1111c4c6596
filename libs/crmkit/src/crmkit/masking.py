"""Masking of personal data for callers who may not see it in clear.

Masks keep just enough to recognise a value over the phone or at the counter (initials, the
last four digits) and nothing that re-identifies a customer on its own.
"""

from __future__ import annotations


def mask_name(value: str) -> str:
    return " ".join(word[0] + "*" * (len(word) - 1) if word else word for word in value.split(" "))


def mask_digits(value: str, *, keep_last: int = 4) -> str:
    """`+8613812345678` -> `+*********5678`: every digit but the last few replaced."""
    digits_seen = sum(ch.isdigit() for ch in value)
    out = []
    for ch in value:
        if ch.isdigit():
            out.append(ch if digits_seen <= keep_last else "*")
            digits_seen -= 1
        else:
            out.append(ch)
    return "".join(out)


def mask_identifier(value: str, *, keep_last: int = 4) -> str:
    if len(value) <= keep_last:
        return "*" * len(value)
    return "*" * (len(value) - keep_last) + value[-keep_last:]


def mask_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at:
        return mask_identifier(value)
    return (local[:1] + "***" if local else "***") + "@" + domain


def mask_text(value: str) -> str:
    return "***" if value else ""
