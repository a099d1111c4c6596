"""The pure decisions of the data subject's requests, without a database: erasure per class, export."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from crm_profile.attributes.model import AttributeValue, DataClass, ValueType
from crm_profile.customers.model import ACTIVE, ERASED, Customer
from crm_profile.privacy.data_subject import rules
from crm_profile.privacy.data_subject.model import ErasureOutcome, Inventory
from crm_profile.privacy.retention import rules as retention_rules
from crmkit.errors import InvalidArgument
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
