"""Who sees which class of personal data how, and the masks.

`DISCLOSURE` is the one table of role x data class -> clear / masked / denied (written out in
docs/privacy.md); services decide from it, never from role lists of their own. Masks keep just
enough to recognise a value over the phone or at the counter (initials, the last four digits, a
birth year) and nothing that re-identifies a customer on its own or beside the other masks.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from datetime import date
from enum import StrEnum

from crmkit.auth import Role


class Disclosure(StrEnum):
    CLEAR = "clear"
    MASKED = "masked"  # shown in the documented mask shape
    DENIED = "denied"  # left out altogether (and named in `masked_fields`)


# The data classes masking applies to, as `crm.profile.v1.DataClass` names them without prefix.
# Other classes (demographic, financial, ...) are shown to every role that may read the record.
IDENTITY, CONTACT, SPECIAL_CATEGORY = "IDENTITY", "CONTACT", "SPECIAL_CATEGORY"
PROTECTED_CLASSES = (IDENTITY, CONTACT, SPECIAL_CATEGORY)

_C, _M, _D = Disclosure.CLEAR, Disclosure.MASKED, Disclosure.DENIED
# Channel applications, relationship managers (their own book only) and risk officers serve or
# protect the customer: clear. Marketers and analysts work on segments and aggregates: masked
# identity, no special-category data, and analysts no contact data at all (they contact no one).
# Auditors review the audit log, which holds ids and paths, so they see personal data masked.
# Other services (the change feed) get what a marketer gets: their read models need no more.
DISCLOSURE: Mapping[Role, Mapping[str, Disclosure]] = {
    Role.CHANNEL_APP: {IDENTITY: _C, CONTACT: _C, SPECIAL_CATEGORY: _C},
    Role.RELATIONSHIP_MANAGER: {IDENTITY: _C, CONTACT: _C, SPECIAL_CATEGORY: _C},
    Role.RISK_OFFICER: {IDENTITY: _C, CONTACT: _C, SPECIAL_CATEGORY: _C},
    Role.MARKETER: {IDENTITY: _M, CONTACT: _M, SPECIAL_CATEGORY: _D},
    Role.ANALYST: {IDENTITY: _M, CONTACT: _D, SPECIAL_CATEGORY: _D},
    Role.AUDITOR: {IDENTITY: _M, CONTACT: _M, SPECIAL_CATEGORY: _D},
    Role.ADMIN: {IDENTITY: _M, CONTACT: _M, SPECIAL_CATEGORY: _D},
    Role.SERVICE: {IDENTITY: _M, CONTACT: _M, SPECIAL_CATEGORY: _D},
}
_OPENNESS = {_C: 2, _M: 1, _D: 0}


def disclosure(roles: Set[Role], data_class: str) -> Disclosure:
    """The most open treatment any of the caller's roles gets for the class (a caller holding
    two roles does the work of either); DENIED for a caller with no listed role."""
    found = [DISCLOSURE[role][data_class] for role in roles if role in DISCLOSURE]
    return max(found, key=_OPENNESS.__getitem__, default=_D)


def mask_name(value: str) -> str:
    return " ".join(word[0] + "*" * (len(word) - 1) if word else word for word in value.split(" "))


# ITU-T E.164 country calling codes of one and two digits; every other code has three. The
# codes are prefix-free, so the first match decides.
_SHORT_CALLING_CODES = frozenset({
    "1", "7", "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81",
    "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
})


def mask_phone(value: str, *, keep_last: int = 4) -> str:
    """E.164 `+8613812345678` -> `+86 *******5678`: the country code, a space, then every digit
    but the last four as `*`. Anything not in E.164 form is masked digit by digit."""
    digits = value[1:]
    if not value.startswith("+") or not digits.isdigit():
        return mask_digits(value, keep_last=keep_last)
    code = next((digits[:n] for n in (1, 2) if digits[:n] in _SHORT_CALLING_CODES), digits[:3])
    national = digits[len(code):]
    return f"+{code} {mask_identifier(national, keep_last=keep_last)}"


def mask_birth_date(value: date) -> tuple[int, int, int]:
    """The year alone, as google.type.Date writes a year without month and day: (year, 0, 0)."""
    return value.year, 0, 0


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
