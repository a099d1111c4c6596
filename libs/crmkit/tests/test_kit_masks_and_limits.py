"""Pinned results of the masks and the length rule for inputs that are easy to get wrong:
separators, digits of other scripts, fewer digits than are kept, values right at the limit."""

from __future__ import annotations

import pytest

from crmkit import masking
from crmkit.auth import Role
from crmkit.errors import InvalidArgument
from crmkit.validation import Violations


@pytest.mark.parametrize(("value", "keep_last", "masked"), [
    ("+1 (555) 123-4567", 4, "+* (***) ***-4567"),  # separators stay where they are
    ("+1 (555) 123-4567", 0, "+* (***) ***-****"),
    ("12a34b56", 4, "**a34b56"),
    ("123", 4, "123"),  # no more digits than are kept: nothing to hide
    ("1234", 4, "1234"),
    ("12345", 4, "*2345"),
    ("123", 0, "***"),
    ("", 4, ""),
    ("\u0660\u0661\u0662\u0663\u0664\u0665", 4, "**\u0662\u0663\u0664\u0665"),  # Arabic-Indic digits are digits
    ("\u00b2\u00b31234", 4, "**1234"),  # so are superscripts (str.isdigit)
])
def test_digit_masks_keep_only_the_last_digits(value: str, keep_last: int, masked: str) -> None:
    assert masking.mask_digits(value, keep_last=keep_last) == masked


def test_name_email_and_identifier_masks_on_edge_values() -> None:
    assert masking.mask_name("Li  Wei") == "L*  W**"  # an empty word between two spaces stays empty
    assert masking.mask_name(" li") == " l*"
    assert masking.mask_email("@example.com") == "***@example.com"
    assert masking.mask_email("no-at-sign-1234") == "***********1234"  # not an address: masked as an identifier
    assert masking.mask_identifier("abc") == "***"
    assert masking.mask_identifier("abcd") == "****"
    assert masking.mask_identifier("abcde") == "*bcde"


def test_max_length_accepts_the_limit_and_names_it_past_it() -> None:
    v = Violations()
    assert v.max_length("x" * 5, "a", 5)
    assert v.max_length("", "b", 0)
    assert not v  # nothing recorded for values within the limit
    assert not v.max_length("x" * 6, "c", 5)
    assert not v.max_length("\u00e9" * 2, "d", 1)  # characters, not bytes: two is over one
    with pytest.raises(InvalidArgument) as error:
        v.raise_if_any()
    assert [(f.field, f.description) for f in error.value.violations] == [
        ("c", "must be at most 5 characters"), ("d", "must be at most 1 characters")]


@pytest.mark.parametrize(("phone", "masked"), [
    ("+8613812345678", "+86 *******5678"),  # the contract's shape
    ("+14155550123", "+1 ******0123"),
    ("+79161234567", "+7 ******4567"),
    ("+35312345678", "+353 ****5678"),  # a three-digit code
    ("+861234", "+86 ****"),  # no longer than the kept digits: all hidden, as mask_identifier does
    ("13812345678", "*******5678"),  # not E.164: digit by digit
])
def test_phone_mask_keeps_the_country_code_and_the_last_four_digits(phone: str, masked: str) -> None:
    assert masking.mask_phone(phone) == masked


def test_a_caller_with_several_roles_gets_the_most_open_entry_and_no_role_gets_nothing() -> None:
    assert masking.disclosure({Role.ANALYST}, masking.CONTACT) is masking.Disclosure.DENIED
    assert masking.disclosure({Role.ANALYST, Role.MARKETER}, masking.CONTACT) is masking.Disclosure.MASKED
    assert masking.disclosure({Role.AUDITOR, Role.CHANNEL_APP}, masking.IDENTITY) is masking.Disclosure.CLEAR
    assert masking.disclosure(set(), masking.IDENTITY) is masking.Disclosure.DENIED
    assert set(masking.DISCLOSURE) == set(Role)  # every role has its row
