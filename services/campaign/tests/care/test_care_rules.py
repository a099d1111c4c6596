"""The care task rules that need no database: the personal-data screen, due dates, completions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm.campaign.v1 import care_pb2
from crm_campaign.campaigns.model import Channel
from crm_campaign.care import rules
from crm_campaign.care.model import CareTask, CareTaskKind, CareTaskOutcome, CareTaskState, Completion
from crmkit.errors import InvalidArgument
from crmkit.testing import assert_enum_mirrors
from crmkit.validation import Violations

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_the_domain_enums_mirror_the_contract() -> None:
    assert_enum_mirrors(CareTaskKind, care_pb2.CareTaskKind, prefix="CARE_TASK_KIND_")
    assert_enum_mirrors(CareTaskState, care_pb2.CareTaskState, prefix="CARE_TASK_STATE_")
    assert_enum_mirrors(CareTaskOutcome, care_pb2.CareTaskOutcome, prefix="CARE_TASK_OUTCOME_")


@pytest.mark.parametrize(("text", "kind"), [
    ("Call back at li.wei@example.com", "an e-mail address"),
    ("ID 11010519491231002X on file", "an identity, account or phone number"),
    ("Mobile 13812345678", "an identity, account or phone number"),
    ("Mobile 138 1234 5678", "a phone number"),
    ("Call +86 21 5555 0100", "a phone number"),
    ("Office 0571-8765432", "a phone number"),
    ("Visit at 南京西路1266号", "a postal address"),
    ("Deliver to 42 Nathan Road", "a postal address"),
])
def test_personal_data_in_free_text_is_found_by_kind(text: str, kind: str) -> None:
    assert rules.personal_data_in(text) == kind


@pytest.mark.parametrize("text", [
    "Birthday greeting", "Review on 2026-12-07 at 10:30", "Renew TD-3Y-CNY at 2.60 %",
    "Discuss the 500,000 CNY maturity", "生日问候", "Q4 service review (tier standard)",
])
def test_ordinary_task_text_passes_the_screen(text: str) -> None:
    assert rules.personal_data_in(text) is None


def task(**fields: object) -> CareTask:
    values: dict[str, object] = {
        "care_task_id": "", "customer_id": "c-1", "kind": CareTaskKind.BIRTHDAY_GREETING, "title": "Birthday",
        "assignee": "rm-1", "due_at": NOW + timedelta(days=3)}
    values.update(fields)
    return CareTask(**values)  # type: ignore[arg-type]


def violations(check: Violations) -> dict[str, str]:
    try:
        check.raise_if_any()
    except InvalidArgument as error:
        return {v.field: v.description for v in error.violations}
    return {}


def test_due_times_must_lie_between_now_and_366_days_ahead() -> None:
    assert violations(rules.validate_new(task(), now=NOW, v=Violations())) == {}
    assert violations(rules.validate_new(task(due_at=NOW - timedelta(minutes=2)), now=NOW, v=Violations())) == {}
    assert violations(rules.validate_new(task(due_at=NOW - timedelta(hours=1)), now=NOW, v=Violations())) == {
        "care_task.due_time": "must not be in the past"}
    assert violations(rules.validate_new(task(due_at=NOW + timedelta(days=367)), now=NOW, v=Violations())) == {
        "care_task.due_time": "must not be more than 366 days ahead"}
    assert violations(rules.validate_new(task(due_at=None), now=NOW, v=Violations())) == {
        "care_task.due_time": "is required"}


def test_assignees_are_employee_ids_or_branch_queues() -> None:
    for good in ("rm-1", "E10234", "li.wei@bank", "branch:SH-001"):
        assert violations(rules.validate_new(task(assignee=good), now=NOW, v=Violations())) == {}, good
    for bad in ("branch:", "two words", "x" * 65, "branch:" + "b" * 33):
        assert "care_task.assignee" in violations(rules.validate_new(task(assignee=bad), now=NOW, v=Violations()))


def test_a_completion_names_its_channel_exactly_when_the_customer_was_contacted() -> None:
    def check(outcome: int, channel: int = 0) -> dict[str, str]:
        return violations(rules.validate_completion(Completion(outcome=outcome, contact_channel=channel),
                                                    Violations()))

    assert check(CareTaskOutcome.CONTACTED, Channel.RM_VISIT) == {}
    assert check(CareTaskOutcome.NOT_REACHED) == {}
    assert "contact_channel" in check(CareTaskOutcome.ACCEPTED)
    assert "contact_channel" in check(CareTaskOutcome.NOT_NEEDED, Channel.SMS)
    assert check(0) == {"outcome": "is required"}
    assert check(99) == {"outcome": "99 is not a known CareTaskOutcome value"}


def test_cancelling_closes_the_task_and_only_in_progress_or_cancelled_may_be_set() -> None:
    current = task(care_task_id="t1", state=CareTaskState.OPEN)
    cancelled = rules.apply(current, task(state=CareTaskState.CANCELLED), ["state"], now=NOW)
    assert (cancelled.state, cancelled.closed_at, cancelled.title) == (CareTaskState.CANCELLED, NOW, "Birthday")
    assert "care_task.state" in violations(rules.validate_changes(task(state=CareTaskState.DONE), ["state"], now=NOW,
                                                                  v=Violations()))
    moved = rules.apply(current, task(due_at=NOW + timedelta(days=9)), ["due_time"], now=NOW)
    assert moved.due_at == NOW + timedelta(days=9)
