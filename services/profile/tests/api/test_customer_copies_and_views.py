"""Customer copies (normalise, the masked view) and the Customer message's times: the fast paths
bulk imports take give what the generic ones gave."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from crm_profile.api import customer_messages
from crm_profile.attributes.model import AttributeValue, ValueType
from crm_profile.customers import rules
from crm_profile.customers.model import Customer, CustomerView, ExternalId
from crmkit.auth import Principal, Role
from crmkit.errors import InvalidArgument

FEED = Principal(subject="system:feed", roles=frozenset({Role.SERVICE}))
MANAGER = Principal(subject="rm-1", roles=frozenset({Role.RELATIONSHIP_MANAGER}))
TODAY = date(2026, 12, 5)


def customer(**changes: object) -> Customer:
    values: dict[str, object] = {
        "customer_id": "C1", "customer_type": 1, "full_name": "  li   wei ", "id_type": 1,
        "id_number": " 11010519491231002x ", "id_issuing_country": "CN", "mobile_phone": " +8613812345678 ",
        "email": " Li.Wei@Example.COM ", "nationality": " cn ",
        "address": {"regionCode": "CN", "locality": "Beijing", "postalCode": "100020", "addressLines": ["1 Road"]},
        "attributes": {"tier": AttributeValue(ValueType.STRING, "gold"),
                       "income": AttributeValue(ValueType.INT, 10, personal=True),
                       "alias": AttributeValue(ValueType.STRING, "x", personal=True)},
        "external_ids": (ExternalId("core", "1"),), "version": 2,
    }
    return Customer(**{**values, **changes})  # type: ignore[arg-type]


def test_replace_is_dataclasses_replace() -> None:
    original = customer()
    copy = original.replace(full_name="A", state=2)
    assert copy == dataclasses.replace(original, full_name="A", state=2)
    assert copy is not original and original.full_name == "  li   wei " and original.state == 1
    assert copy.address is original.address  # shallow, as dataclasses.replace
    assert original.replace() == original
    with pytest.raises(TypeError, match="no field colour, shade"):
        original.replace(shade=1, colour=2, email="x")


def test_normalise_returns_a_canonical_copy_and_leaves_the_input_alone() -> None:
    given = customer()
    normal = rules.normalise(given)
    assert (normal.full_name, normal.id_number, normal.email, normal.mobile_phone, normal.nationality) == (
        "li wei", "11010519491231002X", "li.wei@example.com", "+8613812345678", "CN")
    assert given == customer()
    assert rules.validate(normal, today=TODAY).raise_if_any() is None


def test_the_masked_view_names_personal_fields_then_hidden_attributes_in_order() -> None:
    view = rules.view_for(FEED, rules.normalise(customer()))
    assert view.masked_fields == ("full_name", "id_document.number", "mobile_phone", "email", "address",
                                  "attributes.alias", "attributes.income")
    masked = view.customer
    assert (masked.full_name, masked.id_number, masked.mobile_phone, masked.email) == (
        "l* w**", "**************002X", "+86 *******5678", "l***@example.com")
    assert masked.address == {"regionCode": "CN"}  # no city: see docs/privacy.md
    assert masked.attributes == {"tier": AttributeValue(ValueType.STRING, "gold")}
    empty = rules.view_for(FEED, Customer("C2", 1, "", address={}, attributes={}))
    assert empty.masked_fields == () and empty.customer.full_name == ""
    clear = rules.view_for(MANAGER, customer())
    assert clear == CustomerView(customer(), (), clear.clear_fields)
    assert clear.clear_fields == ("full_name", "id_document.number", "mobile_phone", "email", "address",
                                  "attributes.alias", "attributes.income")


@pytest.mark.parametrize(("number", "valid"), [
    ("11010519491231002X", True), ("110105194912310021", False), ("11010519491231002x", False),
    ("1101051949123100", False), ("1101051949123100AX", False),
])
def test_prc_resident_id_check_character(number: str, valid: bool) -> None:
    assert rules.is_valid_cn_resident_id(number) is valid


def test_validation_messages_for_values_at_and_past_their_limits() -> None:
    at_limit = customer(full_name="N" * 200, email="e" * 64 + "@" + "d" * 185 + ".com", occupation="o" * 100)
    assert rules.validate(rules.normalise(at_limit), today=TODAY).raise_if_any() is None
    past = customer(full_name="N" * 201, email="e" * 64 + "@" + "d" * 186 + ".com", occupation="o" * 101,
                    mobile_phone="+86 138 1234 5678", id_number="11010519491231002Y")
    with pytest.raises(InvalidArgument) as error:
        rules.validate(rules.normalise(past), today=TODAY).raise_if_any()
    assert [(f.field, f.description) for f in error.value.violations] == [
        ("customer.full_name", "must be at most 200 characters"),
        ("customer.id_document.number",
         "is not a valid PRC resident identity card number (18 characters, check character)"),
        ("customer.mobile_phone", "must be in E.164 form: + then 8 to 15 digits, e.g. +8613812345678"),
        ("customer.email", "must be at most 254 characters"),  # and no pattern message on top
        ("customer.occupation", "must be at most 100 characters"),
    ]


def test_times_from_one_datetime_and_from_two() -> None:
    stamp = datetime(2026, 12, 5, 10, 11, 12, 345678, tzinfo=UTC)
    one = customer_messages.to_proto(CustomerView(customer(created_at=stamp, updated_at=stamp)))
    assert one.create_time == one.update_time
    assert one.update_time.ToDatetime(tzinfo=UTC) == stamp
    later = datetime(2026, 12, 6, tzinfo=UTC)
    two = customer_messages.to_proto(CustomerView(customer(created_at=stamp, updated_at=later)))
    assert (two.create_time.ToDatetime(tzinfo=UTC), two.update_time.ToDatetime(tzinfo=UTC)) == (stamp, later)
    only_updated = customer_messages.to_proto(CustomerView(customer(updated_at=later)))
    assert not only_updated.HasField("create_time") and only_updated.update_time.ToDatetime(tzinfo=UTC) == later


def test_equal_local_times_an_hour_apart_stay_an_hour_apart() -> None:
    # 02:30 on the night clocks go back happens twice; in one zone the two compare equal.
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)
    second = first.replace(fold=1)
    assert first == second
    message = customer_messages.to_proto(CustomerView(customer(created_at=first, updated_at=second)))
    assert message.update_time.seconds - message.create_time.seconds == 3600
