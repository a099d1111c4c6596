"""The pure decisions of privacy, without a database: erasure per class, retention, the audit chain."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from crm_profile.attributes.model import AttributeValue, DataClass, ValueType
from crm_profile.customers.model import ACTIVE, ERASED, Customer
from crm_profile.privacy import audit_rules, retention_rules, rules
from crm_profile.privacy.model import (
    AuditRow,
    ChainFailure,
    ErasureOutcome,
    Inventory,
    PolicyChanges,
    RetentionAction,
    RetentionAnchor,
)
from crmkit.audit import GENESIS_HASH, AuditEntry, record_hash
from crmkit.errors import InvalidArgument, NotFound
from crmkit.resources import Purpose
from crmkit.validation import Violations

DEFAULTS = retention_rules.DEFAULT_POLICIES
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def customer(**overrides: object) -> Customer:
    values: dict[str, object] = dict(
        customer_id="C1", customer_type=1, full_name="Li Wei", birth_date=date(1985, 3, 14), gender=1,
        nationality="CN", id_type=1, id_number="E1234567", mobile_phone="+8613812345678", email="li@example.com",
        address={"regionCode": "CN", "addressLines": ["1 Road"]}, occupation="Pilot", kyc_status=2,
        risk_tolerance=3, relationship_manager_id="rm-1", branch_id="BJ-1", onboarded_on=date(2015, 1, 1),
        preferred_language="zh-CN",
        attributes={"nick": AttributeValue(ValueType.STRING, "Bao", personal=True),
                    "income": AttributeValue(ValueType.INT, 25000), "gone": AttributeValue(ValueType.STRING, "x")})
    values.update(overrides)
    return Customer(**values)  # type: ignore[arg-type]


ATTRIBUTE_CLASSES = {"nick": DataClass.IDENTITY, "income": DataClass.FINANCIAL}


# --- erasure ----------------------------------------------------------------------------------------


def test_default_plan_erases_personal_classes_anonymises_aggregates_and_keeps_restricted_records() -> None:
    plan = rules.erasure_plan(DEFAULTS)
    assert plan == {
        DataClass.IDENTITY: ErasureOutcome.ERASED, DataClass.CONTACT: ErasureOutcome.ERASED,
        DataClass.DEMOGRAPHIC: ErasureOutcome.ERASED, DataClass.FINANCIAL: ErasureOutcome.ANONYMISED,
        DataClass.TRANSACTION: ErasureOutcome.RESTRICTED, DataClass.BEHAVIOUR: ErasureOutcome.ANONYMISED,
        DataClass.CONSENT: ErasureOutcome.ERASED, DataClass.SPECIAL_CATEGORY: ErasureOutcome.ERASED,
        DataClass.AUDIT: ErasureOutcome.RESTRICTED}
    kept = {**DEFAULTS, DataClass.IDENTITY: dataclasses.replace(DEFAULTS[DataClass.IDENTITY], overrides_erasure=True)}
    assert rules.erasure_plan(kept)[DataClass.IDENTITY] == ErasureOutcome.RESTRICTED
    assert rules.erased_classes(plan) == {DataClass.IDENTITY, DataClass.CONTACT, DataClass.DEMOGRAPHIC,
                                          DataClass.CONSENT, DataClass.SPECIAL_CATEGORY}
    assert rules.anonymised_event_classes(plan) == {DataClass.BEHAVIOUR}


def test_an_erased_customer_keeps_only_non_personal_fields_and_the_classes_not_erased() -> None:
    erased = rules.erased_customer(customer(), rules.CUSTOMER_CLASSES, ATTRIBUTE_CLASSES, today=NOW.date(),
                                   tombstone=True)
    assert (erased.full_name, erased.id_number, erased.mobile_phone, erased.email, erased.address) == ("", "", "", "",
                                                                                                       {})
    assert erased.birth_date is None and erased.gender == 0 and erased.occupation == ""
    assert erased.relationship_manager_id == "" and erased.preferred_language == ""
    assert (erased.branch_id, erased.onboarded_on, erased.customer_type) == ("BJ-1", date(2015, 1, 1), 1)
    # An attribute of an unknown class (its definition was deleted) goes with the special category.
    assert set(erased.attributes) == {"income"}
    assert erased.state == ERASED and erased.closed_on == NOW.date()
    closed = rules.erased_customer(customer(closed_on=date(2024, 1, 1)), [DataClass.CONTACT], ATTRIBUTE_CLASSES,
                                   today=NOW.date(), tombstone=False)
    assert closed.full_name == "Li Wei" and closed.mobile_phone == "" and closed.state == ACTIVE
    assert closed.closed_on == date(2024, 1, 1) and set(closed.attributes) == {"nick", "income", "gone"}


def test_field_history_follows_the_class_of_its_field() -> None:
    assert rules.field_class("mobile_phone", {}) == DataClass.CONTACT
    assert rules.field_class("id_document.number", {}) == DataClass.IDENTITY
    assert rules.field_class("branch_id", {}) == DataClass.NON_PERSONAL
    assert rules.field_class("attributes.income", ATTRIBUTE_CLASSES) == DataClass.FINANCIAL
    assert rules.field_class("attributes.deleted_one", ATTRIBUTE_CLASSES) == DataClass.SPECIAL_CATEGORY
    assert rules.fields_of([DataClass.CONTACT]) == ["address", "email", "mobile_phone"]


def test_the_report_lists_classes_with_data_and_when_restricted_data_goes() -> None:
    inventory = Inventory(closed_on=date(2026, 1, 1))
    inventory.add(DataClass.IDENTITY, 3)
    inventory.add(DataClass.TRANSACTION, 10, datetime(2026, 6, 1, tzinfo=UTC))
    inventory.add(DataClass.AUDIT, 4, datetime(2026, 11, 1, tzinfo=UTC))
    inventory.add(DataClass.CONTACT, 0)
    report = rules.report("C1", inventory=inventory, plan=rules.erasure_plan(DEFAULTS), policies=DEFAULTS,
                          erase_time=NOW)
    assert [(c.data_class, c.outcome, c.record_count) for c in report.classes] == [
        (DataClass.IDENTITY, ErasureOutcome.ERASED, 3), (DataClass.TRANSACTION, ErasureOutcome.RESTRICTED, 10),
        (DataClass.AUDIT, ErasureOutcome.RESTRICTED, 4)]
    assert report.classes[0].restricted_until is None
    assert report.classes[1].restricted_until == datetime(2026, 6, 1, tzinfo=UTC) + timedelta(days=3650)
    financial_kept = dataclasses.replace(DEFAULTS[DataClass.FINANCIAL], overrides_erasure=True)
    assert rules.restricted_until(financial_kept, closed_on=date(2026, 1, 1), newest=None) == datetime(
        2026, 1, 1, tzinfo=UTC) + timedelta(days=3650)
    assert rules.report_from_json("C1", NOW, rules.report_to_json(report)) == report


def test_merge_undo_data_loses_the_erased_classes_but_keeps_its_shape() -> None:
    undo = {"survivor_before": {"plain": {"gender": 1, "branch_id": "BJ-1", "occupation": "Pilot"},
                                "sealed": {"full_name_sealed": "AAA", "mobile_phone_sealed": "BBB"}},
            "survivor_after": {"plain": {}, "sealed": {"full_name_sealed": "CCC"}},
            "preferences_before": {"do_not_contact_note": "x"}, "moved_consents": ["r1"]}
    contact_only = rules.scrub_merge_undo(undo, [DataClass.CONTACT])
    assert contact_only["survivor_before"]["sealed"] == {"full_name_sealed": "AAA", "mobile_phone_sealed": None}
    assert contact_only["preferences_before"] == {"do_not_contact_note": "x"}
    everything = rules.scrub_merge_undo(undo, rules.CUSTOMER_CLASSES | {DataClass.CONSENT})
    assert everything["survivor_before"] == {"plain": {"branch_id": "BJ-1"},
                                             "sealed": {"full_name_sealed": None, "mobile_phone_sealed": None}}
    assert everything["preferences_before"] is None and everything["moved_consents"] == ["r1"]
    assert undo["survivor_before"]["sealed"]["full_name_sealed"] == "AAA"  # the input is left alone


def test_an_export_of_some_classes_holds_only_their_values() -> None:
    contact = rules.customer_for_export(customer(), [DataClass.CONTACT], ATTRIBUTE_CLASSES)
    assert contact is not None and contact.mobile_phone and contact.full_name == "" and contact.occupation == ""
    assert contact.attributes == {}
    assert rules.customer_for_export(customer(), [DataClass.BEHAVIOUR], ATTRIBUTE_CLASSES) is None
    financial = rules.customer_for_export(customer(), [DataClass.FINANCIAL], ATTRIBUTE_CLASSES)
    assert financial is not None and set(financial.attributes) == {"income"}
    assert [len(s) for s in rules.sections(list(range(2500)))] == [1000, 1000, 500]


def test_a_data_subject_request_names_its_purpose_and_an_erasure_its_case() -> None:
    v = Violations()
    rules.check_request_purpose(Purpose("CUSTOMER_SERVICE", ""), v, case_reference=True)
    with pytest.raises(InvalidArgument) as bad:
        v.raise_if_any()
    assert {x.field for x in bad.value.violations} == {"audit.purpose", "audit.justification"}
    fine = Violations()
    rules.check_request_purpose(Purpose("DATA_SUBJECT_REQUEST", ""), fine, case_reference=False)
    assert not fine
    classes = Violations()
    assert rules.check_data_classes([3, 3, 0, 2], "data_classes", classes) == (DataClass.CONTACT, DataClass.IDENTITY)
    assert classes


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


# --- the audit chain --------------------------------------------------------------------------------


def chain(n: int, chain_id: str = "changes", start_seq: int = 1) -> list[AuditRow]:
    rows, prev = [], GENESIS_HASH
    for i in range(n):
        at = NOW + timedelta(seconds=i)
        entry = AuditEntry(principal="rm", action="customer.read", resource_name="customers/C1", purpose="AUDIT",
                           justification=str(i))
        digest = record_hash(prev, at, entry, chain_id=chain_id)
        rows.append(AuditRow(seq=start_seq + 2 * i, chain_id=chain_id, recorded_at=at, principal="rm",
                             action="customer.read", resource_name="customers/C1", purpose="AUDIT",
                             justification=str(i), trace_id="", prev_hash=prev, hash=digest, hash_recipe=2))
        prev = digest
    return rows


def walk(rows: list[AuditRow], tails: dict[str, bytes] | None = None) -> list[ChainFailure]:
    walker = audit_rules.ChainWalker(tails or {})
    return [walker.check(r) for r in sorted(rows, key=lambda r: r.seq)]


def test_interleaved_chains_verify_and_edits_or_removals_are_found() -> None:
    a, b = chain(4, "changes", 1), chain(3, "reads:x", 2)
    assert set(walk(a + b)) == {ChainFailure.NONE}
    edited = [*a[:2], dataclasses.replace(a[2], justification="changed"), a[3]]
    assert walk(edited) == [ChainFailure.NONE, ChainFailure.NONE, ChainFailure.HASH_MISMATCH, ChainFailure.NONE]
    removed = a[:1] + a[2:]
    assert walk(removed)[1] == ChainFailure.LINK_MISMATCH
    # After a purge the first kept record follows the anchor left for its chain.
    assert walk(a[2:], {"changes": a[1].hash}) == [ChainFailure.NONE, ChainFailure.NONE]
    assert walk(a[2:])[0] == ChainFailure.LINK_MISMATCH


def test_audit_actions_and_ranges() -> None:
    assert audit_rules.action_of("customer.read") == audit_rules.READ
    assert audit_rules.action_of("consent.record") == audit_rules.UPDATE
    assert audit_rules.action_of("customer.unmerge") == audit_rules.MERGE
    assert audit_rules.action_of("encryption_key.rotate") == 0
    assert audit_rules.verbs_of([audit_rules.LOOKUP]) == ["lookup", "match"]
    for start, end, anchor in ((5, 4, ""), (1, 10_000_001, ""), (-1, 0, ""), (0, 0, "xyz")):
        with pytest.raises(InvalidArgument):
            audit_rules.check_range(start, end, anchor)
    audit_rules.check_range(1, 10_000_000, "a" * 64)
    assert audit_rules.bounded_end(1, 0, 50) == 50 and audit_rules.bounded_end(1, 0, 20_000_000) == 10_000_000
    head = b"\x01" * 32
    assert audit_rules.anchor_matches(head.hex(), end_hash=b"\x02" * 32, end_given=False, heads=[head])
    assert not audit_rules.anchor_matches(head.hex(), end_hash=b"\x02" * 32, end_given=True, heads=[head])
