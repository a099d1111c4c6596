"""Resource names, audit purposes, idempotency keys and proto values as the services share them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crmkit.errors import InvalidArgument
from crmkit.idempotency import parse_request_id
from crmkit.resources import Purpose, ResourceName, check_purpose, purpose_from, purpose_of
from crmkit.testing import with_overrides
from crmkit.validation import Violations, bounds_rule
from crmkit.values import duration, set_timestamps, timestamp

OFFER = ResourceName("campaigns/{campaign_id}/offers/{offer_id}")


def violations_of(error: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in error.value.violations}


def test_a_name_gives_its_ids_and_is_made_from_them() -> None:
    assert OFFER.parse("campaigns/spring/offers/td-3y") == ("spring", "td-3y")
    assert OFFER.format("spring", "td-3y") == "campaigns/spring/offers/td-3y"
    assert OFFER.ids_in("campaigns/spring") is None
    assert ResourceName("customers/{customer_id}").id_in("customers/C1") == "C1"


@pytest.mark.parametrize("name", ["", "campaigns/spring", "campaigns/a/offers/", "campaigns/a b/offers/c"])
def test_a_name_that_does_not_fit_is_invalid_argument_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        OFFER.parse(name, "offer.name")
    assert violations_of(error) == {"offer.name": f"must be a resource name like {OFFER.template}"}


def test_a_service_may_narrow_the_ids_require_the_name_and_word_the_rule() -> None:
    rule = ResourceName("alertRules/{alert_rule_id}", id_pattern=r"[a-z][a-z0-9-]{0,62}", rule="must name a rule")
    assert rule.id_in("alertRules/large-outflow") == "large-outflow"
    assert rule.id_in("alertRules/UPPER") is None
    with pytest.raises(InvalidArgument) as missing:
        rule.parse_one("", "name", required=True)
    assert violations_of(missing) == {"name": "is required"}
    v = Violations()
    assert not rule.check("alertRules/UPPER", "rules[0]", v)
    with pytest.raises(InvalidArgument) as error:
        v.raise_if_any()
    assert violations_of(error) == {"rules[0]": "must name a rule"}


def test_any_id_without_a_slash_when_the_pattern_allows_it() -> None:
    loose = ResourceName("segments/{segment_id}", id_pattern=r"[^/]+")
    assert loose.id_in("segments/Not A Valid Id") == "Not A Valid Id"
    assert loose.id_in("segments/a/b") is None


def test_a_purpose_is_required_and_its_justification_short() -> None:
    assert purpose_from(audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT, justification="C-1")) \
        == Purpose("COMPLAINT", "C-1")
    assert purpose_of(audit_pb2.AuditContext(purpose=999)) == Purpose("")
    with pytest.raises(InvalidArgument) as error:
        purpose_from(audit_pb2.AuditContext(justification="x" * 201))
    assert set(violations_of(error)) == {"audit.purpose", "audit.justification"}
    v = Violations()
    check_purpose(Purpose(""), v, field="request.audit", required="is required: say why")
    with pytest.raises(InvalidArgument) as collected:
        v.raise_if_any()
    assert violations_of(collected) == {"request.audit.purpose": "is required: say why"}


def test_an_idempotency_key_is_optional_and_a_uuid() -> None:
    assert parse_request_id("") is None
    with pytest.raises(InvalidArgument):
        parse_request_id("not-a-uuid")
    v = Violations()
    assert parse_request_id("not-a-uuid", "key", violations=v) is None
    with pytest.raises(InvalidArgument) as error:
        v.raise_if_any()
    assert violations_of(error) == {"key": "must be a UUID"}


def test_timestamps_and_durations() -> None:
    moment = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert timestamp(moment).ToDatetime(tzinfo=UTC) == moment
    assert duration(timedelta(hours=2)).seconds == 7200
    event = change_event_pb2.ChangeEvent()
    set_timestamps(event, occurred_at=moment, no_such_field=None)
    assert event.occurred_at.ToDatetime(tzinfo=UTC) == moment


@pytest.mark.parametrize("moment", [
    datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 30, 0, 999999, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=14))),
    datetime(2026, 3, 1, 9, 30, 15, 654321),  # naive: taken as UTC
])
def test_a_timestamp_has_the_seconds_and_nanos_protobuf_gives_it(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment)
    assert (timestamp(moment).seconds, timestamp(moment).nanos) == (expected.seconds, expected.nanos)
    event = change_event_pb2.ChangeEvent()
    set_timestamps(event, occurred_at=moment)
    assert event.occurred_at == expected


def test_overrides_copy_messages_replace_lists_and_set_scalars() -> None:
    event = change_event_pb2.ChangeEvent(resource_name="a/1")
    with_overrides(event, {"resource_name": "b/2", "occurred_at": timestamp(datetime(2026, 1, 1, tzinfo=UTC))})
    assert event.resource_name == "b/2" and event.occurred_at.seconds > 0
    bad = error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(field="a")])
    with_overrides(bad, {"field_violations": [error_details_pb2.BadRequest.FieldViolation(field="b")]})
    assert [v.field for v in bad.field_violations] == ["b"]


def test_a_known_purpose_with_a_long_justification_names_the_justification_alone() -> None:
    with pytest.raises(InvalidArgument) as error:
        purpose_from(audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_RISK, justification="x" * 201))
    assert violations_of(error) == {"audit.justification": "must be at most 200 characters"}
    assert purpose_from(audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_RISK, justification="x" * 200)) \
        == Purpose("RISK", "x" * 200)


def test_an_unknown_purpose_number_is_named_as_unknown_not_as_missing() -> None:
    with pytest.raises(InvalidArgument) as error:
        purpose_from(audit_pb2.AuditContext(purpose=999))
    assert violations_of(error) == {"audit.purpose": "999 is not a known AccessPurpose value"}


def test_an_enum_number_is_required_or_known_and_an_unknown_one_says_so() -> None:
    v = Violations()
    assert v.enum(0, "gender", range(0, 4), "Gender")
    assert v.enum(0, "channel", range(1, 5), "Channel")
    assert not v.enum(0, "type", range(1, 3), "CustomerType", required=True)
    assert not v.enum(0, "id_document.type", range(1, 5), "IdDocumentType", required="is required with a number")
    assert not v.enum(42, "id_document.type", range(1, 5), "IdDocumentType", required=True)
    with pytest.raises(InvalidArgument) as error:
        v.raise_if_any()
    assert [(f.field, f.description) for f in error.value.violations] == [
        ("type", "is required"),
        ("id_document.type", "is required with a number"),
        ("id_document.type", "42 is not a known IdDocumentType value"),
    ]


@pytest.mark.parametrize("low, high, rule", [
    (0, 10, "must be between 0 and 10"), (0, None, "must be at least 0"), (None, 10, "must be at most 10")])
def test_a_range_names_only_the_bounds_that_exist(low: int | None, high: int | None, rule: str) -> None:
    assert bounds_rule(low, high) == rule


@pytest.mark.parametrize("value", ["a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\u2028b", "a\u202eb", "a\u2066b", "a\nb"])
def test_text_refuses_control_characters(value: str) -> None:
    v = Violations()
    assert not v.text(value, "full_name")
    with pytest.raises(InvalidArgument) as error:
        v.raise_if_any()
    assert violations_of(error) == {"full_name": "must not contain control characters"}


def test_free_text_may_break_lines_and_hold_tabs_but_no_other_control_character() -> None:
    v = Violations()
    assert v.text("line one\r\nline two\tand a tab, 中文, émoji 👍\u200d", "notes", multiline=True)
    assert v.text("王小明 O'Brien-Smith", "full_name")
    assert not v.text("a\x00b\n", "notes", multiline=True)
    with pytest.raises(InvalidArgument) as error:
        v.raise_if_any()
    assert violations_of(error)["notes"].startswith("must not contain control characters")
