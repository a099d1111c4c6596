"""What counts as "no value" in history: the creation entry's paths and the changes of an update
agree with the canonical text of every field (read in one pass for bulk imports)."""

from __future__ import annotations

from datetime import date

from crm_profile.attributes.model import AttributeValue, ValueType
from crm_profile.customers.model import Customer, ExternalId
from crm_profile.history import rules
from crm_profile.history.model import FieldChangeKind

NAMES = {"gender": {1: "GENDER_MALE"}, "customer_type": {1: "CUSTOMER_TYPE_INDIVIDUAL"}}


def test_the_filled_paths_are_the_snapshot_keys() -> None:
    bare = Customer("C1", 0, "")
    assert rules.filled_paths(bare) == []  # every field empty
    full = Customer("C1", 1, "Li", birth_date=date(1990, 1, 2), gender=1, id_type=0, mobile_phone="",
                    address={"regionCode": "CN"}, external_ids=(ExternalId("core", "1"),), closed_on=None,
                    attributes={"tier": AttributeValue(ValueType.STRING, "gold")})
    paths = rules.filled_paths(full)
    assert paths == sorted(rules.snapshot(full, NAMES))
    assert paths == ["address", "attributes.tier", "birth_date", "customer_type", "external_ids", "full_name",
                     "gender"]


def test_zero_and_empty_values_are_no_value_and_everything_else_is_one() -> None:
    assert all(rules._is_empty(v) for v in (None, "", {}, (), 0))
    assert not any(rules._is_empty(v) for v in (False, 0.0, [], "0", " ", 1, True, date(1, 1, 1), {"a": 1}, (0,)))
    assert rules._canonical(False, None) == "false"
    assert rules._canonical(0, {0: "UNSPECIFIED"}) == ""


def test_an_update_lists_the_fields_that_differ_in_field_order() -> None:
    before = Customer("C1", 1, "Li", gender=1, mobile_phone="+8613812345678", occupation="pilot")
    after = Customer("C1", 1, "Li Wei", gender=0, mobile_phone="+8613812345678", email="li@example.com",
                     version=9)  # bookkeeping is not a field change
    changes = rules.changes(before, after, NAMES)
    assert [(c.field, c.kind, c.old, c.new, c.personal) for c in changes] == [
        ("email", FieldChangeKind.SET, "", "li@example.com", True),
        ("full_name", FieldChangeKind.SET, "Li", "Li Wei", True),
        ("gender", FieldChangeKind.CLEARED, "GENDER_MALE", "", False),
        ("occupation", FieldChangeKind.CLEARED, "pilot", "", False),
    ]
    assert changes == rules.diff(rules.snapshot(before, NAMES), rules.snapshot(after, NAMES))
