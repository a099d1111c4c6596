"""Complaint rules (validation, defaults, masking, the manager's cases), without a database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from enum import IntEnum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, sla_pb2
from crm_feedback.complaints import rules
from crm_feedback.complaints.model import (
    Category,
    Channel,
    ComplaintDraft,
    ComplaintFilter,
    EscalationTrigger,
    Priority,
    Status,
    TimeRange,
)
from crm_feedback.sla.rules import SlaClock, default_policy
from crmkit.auth import Principal, Role
from crmkit.errors import PermissionDenied
from crmkit.testing import assert_enum_mirrors
from crmkit.validation import Violations

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
DRAFT = ComplaintDraft(customer="customers/C1", channel=2, description="Charged twice", category=3, priority=3)
POLICY = default_policy(respond_hours=48, resolve_hours=72)


def fields(violations: Violations) -> set[str]:
    try:
        violations.raise_if_any()
    except Exception as exc:
        return {v.field for v in exc.violations}  # type: ignore[attr-defined]
    return set()


def principal(*roles: Role, subject: str = "someone") -> Principal:
    return Principal(subject=subject, roles=frozenset(roles))


def test_a_valid_draft_has_no_violations() -> None:
    assert fields(rules.validate_draft(DRAFT, now=NOW)) == set()


def test_description_length_counts_characters_after_trimming() -> None:
    chinese = "年" * 4000
    assert fields(rules.validate_draft(dataclasses.replace(DRAFT, description=f"  {chinese}  "), now=NOW)) == set()
    too_long = dataclasses.replace(DRAFT, description=chinese + "费")
    assert fields(rules.validate_draft(too_long, now=NOW)) == {"complaint.description"}


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(timedelta(0), True), (timedelta(seconds=30), True), (timedelta(minutes=2), False),
     (-timedelta(hours=72), True), (-timedelta(hours=72, seconds=1), False)],
)
def test_receive_time_may_be_up_to_72_hours_past_and_never_future(offset: timedelta, ok: bool) -> None:
    draft = dataclasses.replace(DRAFT, receive_time=NOW + offset)
    assert fields(rules.validate_draft(draft, now=NOW)) == (set() if ok else {"complaint.receive_time"})


def test_new_complaint_applies_defaults_and_starts_the_clocks_at_receipt() -> None:
    draft = dataclasses.replace(DRAFT, category=0, priority=0, description="  late card  ",
                                receive_time=NOW - timedelta(hours=5))
    complaint = rules.new_complaint(draft, complaint_id="CMP-20260115-000007", filer="rm-1", now=NOW, policy=POLICY)
    assert complaint.customer_id == "C1"
    assert complaint.category == 13  # OTHER until the classifier is wired in
    assert complaint.priority == Priority.MEDIUM
    assert complaint.status == Status.OPEN
    assert complaint.description == "late card"
    assert complaint.sla.policy == "slaPolicies/default"
    assert complaint.sla.respond_by == NOW + timedelta(hours=43)
    assert complaint.sla.resolve_by == NOW + timedelta(hours=67)


def test_complaint_reference_carries_the_filing_date_and_a_serial() -> None:
    assert rules.complaint_id_for(42, NOW) == "CMP-20260115-000042"
    assert rules.complaint_id_of("complaints/CMP-20260115-000042") == "CMP-20260115-000042"
    assert rules.complaint_id_of("complaints/a/b") is None


def test_request_key_is_required_and_a_uuid() -> None:
    v = Violations()
    assert rules.request_key("", v) is None
    assert rules.request_key("x", v) is None
    assert rules.request_key("6f1c1c9e-3b1a-4c55-9a0e-2f4ad3b7c0de", v) is not None
    assert fields(v) == {"request_id"}


def test_filter_validation_names_each_bad_field() -> None:
    bad = ComplaintFilter(customer="x", statuses=(1, 9), order_by="name", min_escalation_level=-1,
                          due_interval=TimeRange(start=NOW, end=NOW - timedelta(seconds=1)))
    assert fields(rules.validate_filter(bad, page_size=-5)) == {
        "customer", "statuses[1]", "order_by", "min_escalation_level", "due_interval", "page_size"}
    assert rules.ordering("  priority   desc ") == "priority desc"
    assert rules.ordering("") == "create_time desc"


def _complaint(**changes: object):  # type: ignore[no-untyped-def]
    complaint = rules.new_complaint(DRAFT, complaint_id="CMP-1", filer="rm-1", now=NOW, policy=POLICY)
    return dataclasses.replace(complaint, **changes)


@pytest.mark.parametrize(
    ("roles", "masked"),
    [((Role.CHANNEL_APP,), False), ((Role.RELATIONSHIP_MANAGER,), False), ((Role.ADMIN,), False),
     ((Role.AUDITOR,), False), ((Role.ANALYST,), True), ((Role.SERVICE,), True),
     ((Role.ANALYST, Role.AUDITOR), False)],
)
def test_description_is_masked_for_roles_that_may_not_read_it(roles: tuple[Role, ...], masked: bool) -> None:
    view = rules.view_for(principal(*roles, subject="rm-1"), _complaint(), now=NOW)
    assert (view.complaint.description == "***") is masked
    assert view.masked_fields == (("description",) if masked else ())


def test_breach_flags_follow_the_clock() -> None:
    complaint = _complaint()
    assert not rules.view_for(principal(Role.ADMIN), complaint, now=NOW).respond_breached
    later = rules.view_for(principal(Role.ADMIN), complaint, now=NOW + timedelta(hours=50))
    assert later.respond_breached and not later.resolve_breached


def test_a_manager_works_only_complaints_they_filed_or_are_assigned() -> None:
    rules.check_case(principal(Role.RELATIONSHIP_MANAGER, subject="rm-1"), _complaint())
    rules.check_case(principal(Role.RELATIONSHIP_MANAGER, subject="rm-2"), _complaint(assignee="rm-2"))
    rules.check_case(principal(Role.RELATIONSHIP_MANAGER, Role.ANALYST, subject="rm-2"), _complaint())
    with pytest.raises(PermissionDenied):
        rules.check_case(principal(Role.RELATIONSHIP_MANAGER, subject="rm-2"), _complaint())
    assert rules.case_handler(principal(Role.RELATIONSHIP_MANAGER, subject="rm-2")) == "rm-2"
    assert rules.case_handler(principal(Role.ADMIN)) is None


def descriptions(violations: Violations) -> dict[str, str]:
    try:
        violations.raise_if_any()
    except Exception as exc:
        return {v.field: v.description for v in exc.violations}  # type: ignore[attr-defined]
    return {}


def test_complaint_text_may_break_lines_but_holds_no_other_control_character() -> None:
    lines = dataclasses.replace(DRAFT, description="Charged twice:\n\tonce on 1 Jan\r\n\tonce on 2 Jan")
    assert descriptions(rules.validate_draft(lines, now=NOW)) == {}
    bad = dataclasses.replace(DRAFT, description="Charged\x00 twice\u202e", branch_id="b\n1", priority=42)
    assert descriptions(rules.validate_draft(bad, now=NOW)) == {
        "complaint.description": "must not contain control characters other than line breaks and tabs",
        "complaint.branch_id": "must not contain control characters",
        "complaint.priority": "42 is not a known ComplaintPriority value",
    }


def test_an_unknown_channel_is_named_as_such_and_a_missing_one_as_required() -> None:
    unknown = descriptions(rules.validate_draft(dataclasses.replace(DRAFT, channel=99), now=NOW))
    assert unknown == {"complaint.channel": "99 is not a known Channel value"}
    missing = descriptions(rules.validate_draft(dataclasses.replace(DRAFT, channel=0), now=NOW))
    assert missing["complaint.channel"].startswith("is required")


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (Channel, channel_pb2.Channel, "CHANNEL_"),
    (Category, classification_pb2.ComplaintCategory, "COMPLAINT_CATEGORY_"),
    (Priority, complaint_pb2.ComplaintPriority, "COMPLAINT_PRIORITY_"),
    (Status, complaint_pb2.ComplaintStatus, "COMPLAINT_STATUS_"),
    (EscalationTrigger, complaint_pb2.EscalationTrigger, "ESCALATION_TRIGGER_"),
    (SlaClock, sla_pb2.SlaClock, "SLA_CLOCK_"),
])
def test_domain_enums_mirror_the_contract(domain: type[IntEnum], proto: EnumTypeWrapper, prefix: str) -> None:
    assert_enum_mirrors(domain, proto, prefix=prefix)
