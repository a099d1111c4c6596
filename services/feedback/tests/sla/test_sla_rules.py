"""SLA clock maths, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_feedback.sla.rules import SlaPolicy, deadlines, default_policy, is_breached, select_policy

RECEIVED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
DEFAULT = default_policy(respond_hours=48, resolve_hours=48)
CARDS, FRAUD = 5, 12
MEDIUM, URGENT = 2, 4


def test_default_policy_gives_48_hours_for_both_clocks() -> None:
    assert DEFAULT.name == "slaPolicies/default"
    due = deadlines(DEFAULT, received_at=RECEIVED)
    assert due.respond_by == datetime(2026, 1, 17, 9, 30, tzinfo=UTC)
    assert due.resolve_by == datetime(2026, 1, 17, 9, 30, tzinfo=UTC)


def test_configured_default_hours_are_elapsed_time_across_month_and_year_ends() -> None:
    policy = default_policy(respond_hours=24, resolve_hours=15 * 24)
    due = deadlines(policy, received_at=datetime(2026, 12, 31, 23, 0, tzinfo=UTC))
    assert due.respond_by == datetime(2027, 1, 1, 23, 0, tzinfo=UTC)
    assert due.resolve_by == datetime(2027, 1, 15, 23, 0, tzinfo=UTC)


def test_clocks_count_from_the_receive_time_not_the_filing_time() -> None:
    letter_received = RECEIVED - timedelta(hours=30)
    assert deadlines(DEFAULT, received_at=letter_received).respond_by == RECEIVED + timedelta(hours=18)


@pytest.mark.parametrize(
    ("stopped_at", "now", "breached"),
    [
        (None, RECEIVED - timedelta(seconds=1), False),  # running, before the deadline
        (None, RECEIVED, True),  # still running at the deadline
        (None, RECEIVED + timedelta(days=3), True),
        (RECEIVED - timedelta(minutes=1), RECEIVED + timedelta(days=3), False),  # stopped in time
        (RECEIVED, RECEIVED + timedelta(days=3), False),  # stopped exactly at the deadline
        (RECEIVED + timedelta(seconds=1), RECEIVED + timedelta(days=3), True),  # stopped late
    ],
)
def test_a_clock_is_breached_when_running_at_its_deadline_or_stopped_after_it(stopped_at, now, breached) -> None:
    assert is_breached(due=RECEIVED, stopped_at=stopped_at, now=now) is breached


def _policy(policy_id: str, category: int = 0, priority: int = 0) -> SlaPolicy:
    return SlaPolicy(policy_id, timedelta(hours=1), timedelta(hours=2), category=category, priority=priority)


def test_the_most_specific_policy_wins() -> None:
    policies = [_policy("cards-any", CARDS), _policy("any-urgent", 0, URGENT), _policy("cards-urgent", CARDS, URGENT)]
    assert select_policy(policies, category=CARDS, priority=URGENT, default=DEFAULT).sla_policy_id == "cards-urgent"
    assert select_policy(policies, category=CARDS, priority=MEDIUM, default=DEFAULT).sla_policy_id == "cards-any"
    assert select_policy(policies, category=FRAUD, priority=URGENT, default=DEFAULT).sla_policy_id == "any-urgent"
    assert select_policy(policies, category=FRAUD, priority=MEDIUM, default=DEFAULT) is DEFAULT
    assert select_policy([], category=CARDS, priority=URGENT, default=DEFAULT) is DEFAULT
