"""Pure rules about free text: what may be classified, its language, how labels meet the
contract's enums (mirrors checked against the protos)."""

from __future__ import annotations

from enum import IntEnum

import pytest

from crm.feedback.v1 import classification_pb2
from crm_feedback.classification import text
from crm_feedback.classification.model import Status, Target
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.testing import assert_enum_mirrors
from crmkit.validation import Violations


def violations(v: Violations) -> tuple[FieldViolation, ...]:
    try:
        v.raise_if_any()
    except InvalidArgument as exc:
        return exc.violations
    return ()


@pytest.mark.parametrize(("value", "problem"), [
    ("", "is required"), ("   \n\t ", "is required"), ("x" * 4001, "at most 4000"),
])
def test_empty_whitespace_or_over_long_text_is_refused_naming_the_field(value: str, problem: str) -> None:
    v = Violations()
    text.check_text(value, "text", v)
    assert [(found.field, problem in found.description) for found in violations(v)] == [("text", True)]


def test_text_is_trimmed_and_4000_characters_after_trimming_are_allowed() -> None:
    v = Violations()
    assert text.check_text("  " + "x" * 4000 + "  ", "text", v) == "x" * 4000
    assert not violations(v)


def test_language_is_chinese_when_han_characters_are_the_majority() -> None:
    assert text.detect_language("我的信用卡还没有收到") == "zh"
    assert text.detect_language("my card has not arrived") == "en"
    assert text.detect_language("Visa信用卡年费") == "zh"
    assert text.detect_language("the annual fee 年费 was charged twice") == "en"
    assert text.detect_language("12345") == "en"


def test_only_zh_en_or_empty_language_codes_are_accepted() -> None:
    for code, ok in (("", True), ("zh", True), ("en", True), ("fr", False), ("ZH", False)):
        v = Violations()
        text.check_language(code, v)
        assert (not violations(v)) is ok


def test_category_labels_name_the_taxonomy_in_any_case_with_or_without_the_prefix() -> None:
    assert text.category_of("cards") == classification_pb2.COMPLAINT_CATEGORY_CARDS
    fees = classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES
    assert text.category_of("COMPLAINT_CATEGORY_FEES_AND_CHARGES") == fees
    assert text.category_of("digital channels") == classification_pb2.COMPLAINT_CATEGORY_DIGITAL_CHANNELS
    assert text.category_of("card_arrival") == 0


def test_sentiment_labels_in_short_or_enum_form() -> None:
    assert text.sentiment_label("NEGATIVE") == "negative"
    assert text.sentiment_label("SENTIMENT_POSITIVE") == "positive"
    assert text.sentiment_label("2") == ""


def test_mirrors_match_the_protos() -> None:
    categories = IntEnum("Categories", text.CATEGORIES)  # type: ignore[misc]
    assert_enum_mirrors(categories, classification_pb2.ComplaintCategory, prefix="COMPLAINT_CATEGORY_")
    sentiments = IntEnum("Sentiments", {k.upper(): v for k, v in text.SENTIMENTS.items()})  # type: ignore[misc]
    assert_enum_mirrors(sentiments, classification_pb2.Sentiment, prefix="SENTIMENT_")
    assert_enum_mirrors(Target, classification_pb2.TextClassifierTarget, prefix="TEXT_CLASSIFIER_TARGET_")
    assert_enum_mirrors(Status, classification_pb2.TextClassifierStatus, prefix="TEXT_CLASSIFIER_STATUS_")
