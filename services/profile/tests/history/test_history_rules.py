"""Field history's pure rules: snapshots, diffs, masks, paths. No database."""

from __future__ import annotations

from datetime import date, timedelta

from crm_profile.attributes.model import AttributeValue, ValueType
from crm_profile.customers.model import Customer, ExternalId
from crm_profile.history import rules
from crm_profile.history.model import FieldChangeKind

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


def test_changes_between_customers_equal_the_diff_of_their_snapshots() -> None:
    before = customer(email="a@example.com", mobile_phone="+8613800000000", address={"regionCode": "CN"},
                      attributes={"score": AttributeValue(ValueType.INT, 700),
                                  "tier": AttributeValue(ValueType.STRING, "gold")})
    after = customer(email="b@example.com", gender=1, address={"regionCode": "CN"}, kyc_status=2,
                     attributes={"score": AttributeValue(ValueType.INT, 710),
                                 "pet": AttributeValue(ValueType.STRING, "cat")})
    for old, new in ((before, after), (after, before), (before, before)):
        expected = rules.diff(rules.snapshot(old, NAMES), rules.snapshot(new, NAMES))
        assert rules.changes(old, new, NAMES) == expected
    assert [c.field for c in rules.changes(before, after, NAMES)] == [
        "attributes.pet", "attributes.score", "attributes.tier", "email", "gender", "kyc_status", "mobile_phone"]


def test_a_creation_lists_the_filled_paths_and_its_values_come_from_later_changes_or_the_record() -> None:
    created = customer(birth_date=date(1985, 3, 14), email="a@example.com", kyc_status=0,
                       attributes={"score": AttributeValue(ValueType.INT, 700)})
    entry = rules.creation(created)
    assert (entry.field, entry.kind, entry.old, entry.personal) == (rules.RECORD, FieldChangeKind.SET, "", False)
    paths = rules.created_paths(entry.new)
    assert paths == sorted(rules.snapshot(created, NAMES)) and "kyc_status" not in paths
    assert "a@example.com" not in entry.new
    now = rules.snapshot(customer(email="b@example.com", attributes={}), NAMES)
    values = rules.creation_values(
        paths, first_olds={"email": rules.FieldValue("a@example.com", True),
                           "attributes.score": rules.FieldValue("700", False)}, current=now)
    assert values["email"].text == "a@example.com" and values["email"].personal  # old of its first change
    assert values["gender"].text == "GENDER_MALE"  # never changed: the record's current value
    assert values["birth_date"].text == ""  # neither a later change nor a current value: empty, never invented
    assert rules.creation_values(["full_name"], first_olds={}, current={})["full_name"] == rules.FieldValue("", True)


def test_the_stale_query_knows_when_each_core_path_has_a_value() -> None:
    from crm_profile.history import repository

    assert set(repository._CORE_VALUE) == rules.CORE_PATHS  # a new core field needs its "has a value" test
