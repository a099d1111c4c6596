"""The pure decisions of retention, without a database: policy updates, floors, what is due."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from crm_profile.attributes.model import DataClass
from crm_profile.privacy.data_subject import rules
from crm_profile.privacy.retention import rules as retention_rules
from crm_profile.privacy.retention.model import PolicyChanges, RetentionAction, RetentionAnchor
from crmkit.errors import InvalidArgument, NotFound
from crmkit.validation import Violations

DEFAULTS = retention_rules.DEFAULT_POLICIES
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


# --- retention --------------------------------------------------------------------------------------


def policy(data_class: DataClass, **changes: object) -> object:
    return dataclasses.replace(DEFAULTS[data_class], **changes)


def test_a_policy_update_checks_floor_anchor_action_and_length_all_at_once() -> None:
    current = policy(DataClass.TRANSACTION, minimum=timedelta(days=1825))
    with pytest.raises(InvalidArgument) as bad:
        retention_rules.updated(current, PolicyChanges(retention=timedelta(days=30), action=9, legal_basis="x" * 501),
                                ["retention_period", "action", "legal_basis"])
    assert {v.field for v in bad.value.violations} == {"retention_policy.retention_period", "retention_policy.action",
                                                      "retention_policy.legal_basis"}
    changed = retention_rules.updated(current, PolicyChanges(retention=timedelta(days=2000),
                                                             anchor=int(RetentionAnchor.RELATIONSHIP_END)),
                                      ["retention_period", "anchor"])
    assert changed.retention == timedelta(days=2000) and changed.anchor == RetentionAnchor.RELATIONSHIP_END
    assert changed.legal_basis == current.legal_basis  # type: ignore[attr-defined]
    for paths, changes in ((["anchor"], PolicyChanges(anchor=int(RetentionAnchor.RECORD_TIME))),
                           (["action"], PolicyChanges(action=int(RetentionAction.DELETE)))):
        with pytest.raises(InvalidArgument):
            retention_rules.updated(policy(DataClass.IDENTITY), changes, paths)
    with pytest.raises(InvalidArgument):
        retention_rules.check_mask(["retention_period", "name"])


def test_the_purge_never_applies_less_than_the_legal_floor() -> None:
    short = policy(DataClass.BEHAVIOUR, retention=timedelta(days=1), minimum=timedelta(days=90))
    assert short.effective_retention == timedelta(days=90)  # type: ignore[attr-defined]
    assert retention_rules.cutoff(short, NOW) == NOW - timedelta(days=90)  # type: ignore[arg-type]
    assert retention_rules.cutoff_date(short, NOW) == date(2026, 8, 25)  # type: ignore[arg-type]


def test_names_floors_and_classes_of_a_purge() -> None:
    assert retention_rules.class_of("special-category") == DataClass.SPECIAL_CATEGORY
    for unknown in ("non-personal", "gossip"):
        with pytest.raises(NotFound):
            retention_rules.class_of(unknown)
    assert retention_rules.minimums({"transaction": 1825}) == {DataClass.TRANSACTION: timedelta(days=1825)}
    with pytest.raises(ValueError, match="gossip"):
        retention_rules.minimums({"gossip": 1})
    v = Violations()
    assert retention_rules.check_purge_classes([], v) == rules.PERSONAL_CLASSES
    assert retention_rules.check_purge_classes([7, 7, 1, 0], v) == (DataClass.BEHAVIOUR,)
    with pytest.raises(InvalidArgument) as bad:
        v.raise_if_any()
    assert {x.field for x in bad.value.violations} == {"data_classes[2]", "data_classes[3]"}


def test_whole_months_past_the_cutoff_are_dropped_whole() -> None:
    months = [date(2026, 6, 1), date(2026, 7, 1), date(2026, 8, 1)]
    assert retention_rules.due_months(months, datetime(2026, 8, 1, tzinfo=UTC)) == months[:2]
    assert retention_rules.due_months(months, datetime(2026, 7, 31, tzinfo=UTC)) == months[:1]
    assert retention_rules.month_end(date(2026, 12, 1)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_closed_customer_becomes_a_tombstone_only_when_every_class_on_its_record_is_due() -> None:
    every = retention_rules.purge_spec([*rules.CUSTOMER_CLASSES, DataClass.CONSENT, DataClass.BEHAVIOUR],
                                       DEFAULTS, erased=False)
    assert every.tombstone and DataClass.CONSENT in every.erase and every.delete_events == {DataClass.BEHAVIOUR}
    some = retention_rules.purge_spec([DataClass.SPECIAL_CATEGORY], DEFAULTS, erased=False)
    assert not some.tombstone and some.erase == {DataClass.SPECIAL_CATEGORY}
    financial = retention_rules.purge_spec([DataClass.FINANCIAL], DEFAULTS, erased=True)
    assert financial.erase == frozenset()  # anonymising keeps the holdings: nothing personal in them
    deleting = {**DEFAULTS, DataClass.FINANCIAL: policy(DataClass.FINANCIAL, action=RetentionAction.DELETE)}
    assert retention_rules.purge_spec([DataClass.FINANCIAL], deleting, erased=True).erase == {DataClass.FINANCIAL}
