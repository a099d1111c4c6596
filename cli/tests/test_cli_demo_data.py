"""Demo customers: the same every time, and valid by the profile service's own rules."""

from __future__ import annotations

import re
from datetime import date

import pytest

from crm.profile.v1 import customer_pb2
from crm_cli import demo_data

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def as_date(value: object) -> date:
    return date(value.year, value.month, value.day)  # type: ignore[attr-defined]


def test_generation_is_deterministic() -> None:
    first = [c.SerializeToString(deterministic=True) for c in demo_data.customers()]
    second = [c.SerializeToString(deterministic=True) for c in demo_data.customers()]
    assert first == second
    other_seed = [c.SerializeToString(deterministic=True) for c in demo_data.customers(seed=1)]
    assert other_seed != first


def test_a_bank_is_the_start_of_any_larger_one_of_its_seed_and_seeds_never_share_ids() -> None:
    small = [c.SerializeToString(deterministic=True) for c in demo_data.customers(36)]
    large = [c.SerializeToString(deterministic=True) for c in demo_data.customers(100)]
    assert large[:36] == small  # make run's bank, then `crm demo load`: 36 existing, 64 created
    assert [c.customer_id for c in demo_data.customers(3, seed=7)] == ["DEMO7-0001", "DEMO7-0002", "DEMO7-0003"]
    own = {c.customer_id for c in demo_data.customers(100)}
    assert own.isdisjoint(c.customer_id for c in demo_data.customers(100, seed=7))
    # Profile refuses an external id another customer holds: two seeds' banks never share one.
    external = {(e.source_system, e.id) for c in demo_data.customers(100) for e in c.external_ids}
    assert external.isdisjoint((e.source_system, e.id) for c in demo_data.customers(100, seed=7)
                               for e in c.external_ids)


def test_a_few_dozen_customers_with_fixed_unique_ids() -> None:
    customers = demo_data.customers()
    assert 24 <= len(customers) <= 60
    ids = [c.customer_id for c in customers]
    assert ids[0] == "DEMO0001" and len(set(ids)) == len(ids)
    kinds = {c.customer_type for c in customers}
    assert kinds == {customer_pb2.CUSTOMER_TYPE_INDIVIDUAL, customer_pb2.CUSTOMER_TYPE_ORGANISATION}
    assert any(c.relationship_manager_id == "rm-1001" for c in customers)


def test_contact_data_is_well_formed_and_obviously_synthetic() -> None:
    for customer in demo_data.customers():
        assert E164.fullmatch(customer.mobile_phone), customer.customer_id
        assert re.fullmatch(r"[^@\s]+@([a-z0-9-]+\.)*example\.(com|cn)", customer.email), customer.customer_id
        assert customer.address.region_code == "CN"


def test_identity_numbers_carry_valid_check_characters() -> None:
    for customer in demo_data.customers():
        number = customer.id_document.number
        if customer.id_document.type == customer_pb2.ID_DOCUMENT_TYPE_NATIONAL_ID:
            total = sum(int(d) * w for d, w in zip(number[:17], CN_ID_WEIGHTS, strict=True))
            assert "10X98765432"[total % 11] == number[17]
            assert number[6:14] == as_date(customer.birth_date).strftime("%Y%m%d")
            assert (int(number[16]) % 2 == 1) == (customer.gender == customer_pb2.GENDER_MALE)
        assert re.fullmatch(r"[A-Z0-9-]{4,32}", number)
        if customer.id_document.type == customer_pb2.ID_DOCUMENT_TYPE_BUSINESS_REGISTRATION:
            assert len(number) == 18 and demo_data.uscc_check_character(number[:17]) == number[17]


def test_unified_social_credit_codes_follow_the_standard() -> None:
    # Published codes of registered companies (public registry data, not personal data).
    for code in ("91350100M000100Y43", "9144030071526726XG"):
        assert demo_data.uscc_check_character(code[:17]) == code[17]
    assert demo_data.unified_social_credit_code("440300", "71526726") == "9144030071526726XG"


def test_lifecycle_dates_are_consistent() -> None:
    for customer in demo_data.customers():
        born, onboarded = as_date(customer.birth_date), as_date(customer.onboarded_on)
        assert date(1900, 1, 1) <= born < onboarded <= demo_data.AS_OF
        if customer.HasField("closed_on"):
            assert onboarded <= as_date(customer.closed_on) <= demo_data.AS_OF


def test_every_customer_passes_the_profile_services_validation() -> None:
    messages = pytest.importorskip("crm_profile.api.customer_messages")
    rules = pytest.importorskip("crm_profile.customers.rules")
    for customer in demo_data.customers():
        domain = rules.normalise(messages.to_domain(customer))
        violations = rules.validate(domain, today=date.today())
        violations.raise_if_any()


def test_request_ids_are_stable_uuids() -> None:
    assert demo_data.request_id("DEMO0001") == demo_data.request_id("DEMO0001")
    assert demo_data.request_id("DEMO0001") != demo_data.request_id("DEMO0002")
