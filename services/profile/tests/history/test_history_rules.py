"""Field history's pure rules: snapshots, diffs, masks, paths. No database."""

from __future__ import annotations

from datetime import date, timedelta

from crm_profile.attributes.model import AttributeValue, ValueType
from crm_profile.customers.model import Customer, ExternalId
from crm_profile.history import rules
from crm_profile.history.rules import FieldChangeKind

NAMES = {"gender": {1: "GENDER_FEMALE", 2: "GENDER_MALE"}, "customer_type": {1: "CUSTOMER_TYPE_INDIVIDUAL"}}


def customer(**fields: object) -> Customer:
    values: dict[str, object] = {"customer_id": "C1", "customer_type": 1, "full_name": "Li Wei", "gender": 2}
    values.update(fields)
    return Customer(**values)  # type: ignore[arg-type]


def test_snapshot_has_filled_fields_as_canonical_text() -> None:
    snap = rules.snapshot(customer(birth_date=date(1985, 3, 14), address={"regionCode": "CN"},
                                  external_ids=(ExternalId("core-banking", "9"),),
                                  attributes={"score": AttributeValue(ValueType.INT, 700)}), NAMES)
    assert snap["gender"].text == "GENDER_MALE"
    assert snap["birth_date"].text == "1985-03-14"
    assert snap["address"].text == '{"regionCode":"CN"}' and snap["address"].personal
    assert snap["external_ids"].text == '[{"sourceSystem":"core-banking","id":"9"}]'
    assert snap["attributes.score"].text == "700"
    assert "email" not in snap and "kyc_status" not in snap  # empty and the enum's zero value


def test_diff_sets_changed_values_and_clears_removed_ones() -> None:
    before = rules.snapshot(customer(email="a@example.com", mobile_phone="+8613800000000"), NAMES)
    after = rules.snapshot(customer(email="b@example.com", gender=1), NAMES)
    changes = {c.field: c for c in rules.diff(before, after)}
    assert set(changes) == {"email", "mobile_phone", "gender"}
    assert (changes["email"].kind, changes["email"].old, changes["email"].new) == (
        FieldChangeKind.SET, "a@example.com", "b@example.com")
    assert changes["mobile_phone"].kind is FieldChangeKind.CLEARED and changes["mobile_phone"].personal
    assert not changes["gender"].personal
    erased = rules.diff(before, {}, cleared=FieldChangeKind.ERASED)
    assert {c.kind for c in erased} == {FieldChangeKind.ERASED}


def test_masks_follow_the_customer_masks() -> None:
    assert rules.mask("mobile_phone", "+8613812345678").endswith("5678")
    assert rules.mask("full_name", "Li Wei") == "L* W**"
    assert rules.mask("address", '{"addressLines":["1 Road"],"locality":"Beijing","regionCode":"CN"}') == \
        '{"locality":"Beijing","regionCode":"CN"}'
    assert rules.mask("attributes.wechat", "liwei") == "***"


def test_known_paths_groups_and_expansion() -> None:
    assert rules.is_known_path("id_document.number") and rules.is_known_path("attributes.any_id")
    assert not rules.is_known_path("attributes.Bad") and not rules.is_known_path("shoe_size")
    assert rules.expand(["id_document", "email"], ["id_document.number", "id_document.type", "email"]) == [
        "id_document.number", "id_document.type", "email"]
    assert rules.selects(["address"], "address") and not rules.selects(["address"], "email")


def test_max_ages_merge_configuration_and_attribute_ages() -> None:
    ages = rules.max_ages({"mobile_phone": 365, "email": 0}, {"income": timedelta(days=30), "x": None})
    assert ages == {"mobile_phone": timedelta(days=365), "attributes.income": timedelta(days=30)}
