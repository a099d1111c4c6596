"""The Customer message of a view: every field where the contract puts it, the address as
`json_format.ParseDict` would read the stored form (the mapping builds it by hand for speed)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from google.protobuf import json_format
from google.type import postal_address_pb2

from crm.profile.v1 import customer_pb2
from crm_profile.api import customer_messages
from crm_profile.customers.model import Customer, CustomerView, ExternalId


def customer(**changes: object) -> Customer:
    values: dict[str, object] = {
        "customer_id": "C1", "customer_type": 1, "full_name": "Li Wei", "birth_date": date(1980, 2, 29),
        "id_type": 1, "id_number": "110105198002290011", "id_issuing_country": "CN",
        "id_expires_on": date(2030, 1, 31), "mobile_phone": "+8613812345678", "email": "li@example.com",
        "address": {"regionCode": "CN", "locality": "Beijing", "addressLines": ["1 Chang'an Ave", "Floor 2"]},
        "onboarded_on": date(2020, 5, 1), "external_ids": (ExternalId("core-banking", "CB-1"),),
        "version": 3, "created_at": datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "updated_at": datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC),
    }
    return Customer(**{**values, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("address", [
    {"regionCode": "CN", "postalCode": "100020", "administrativeArea": "Beijing", "locality": "Beijing",
     "sublocality": "Chaoyang", "addressLines": ["1 Chang'an Ave"], "recipients": ["Li Wei"], "organization": "Bank",
     "languageCode": "zh", "sortingCode": "A1", "revision": 0},
    {"region_code": "CN", "address_lines": ["a", "b"]},  # field names, as ParseDict also accepts
    {"regionCode": "HK", "aFieldOfANewerPostalAddress": "x"},  # unknown keys are ignored
])
def test_the_address_is_what_parse_dict_reads(address: dict[str, object]) -> None:
    expected = json_format.ParseDict(address, postal_address_pb2.PostalAddress(), ignore_unknown_fields=True)
    assert customer_messages.to_proto(CustomerView(customer(address=address))).address == expected


@pytest.mark.parametrize("address", [
    postal_address_pb2.PostalAddress(
        revision=1, region_code="CN", language_code="zh", postal_code="100020", sorting_code="A1",
        administrative_area="Beijing", locality="Beijing", sublocality="Chaoyang", address_lines=["1 Road", "Fl 2"],
        recipients=["Li Wei"], organization="Bank"),
    postal_address_pb2.PostalAddress(region_code="CN"),
    postal_address_pb2.PostalAddress(),
])
def test_a_sent_address_is_kept_as_message_to_dict_reads_it(address: postal_address_pb2.PostalAddress) -> None:
    sent = customer_pb2.Customer(customer_type=1, full_name="Li Wei", address=address)
    kept = customer_messages.to_domain(sent).address
    assert kept == json_format.MessageToDict(address)
    assert list(kept) == list(json_format.MessageToDict(address))


def test_every_field_lands_where_the_contract_puts_it() -> None:
    message = customer_messages.to_proto(CustomerView(customer(), masked_fields=("email",)))
    assert (message.name, message.etag, message.full_name, message.masked_fields) == (
        "customers/C1", "3", "Li Wei", ["email"])
    assert (message.birth_date.year, message.birth_date.month, message.birth_date.day) == (1980, 2, 29)
    assert (message.id_document.number, message.id_document.issuing_country) == ("110105198002290011", "CN")
    assert (message.id_document.expires_on.year, message.id_document.expires_on.day) == (2030, 31)
    assert message.onboarded_on.year == 2020 and not message.HasField("closed_on")
    assert message.create_time.ToDatetime(tzinfo=UTC) == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert [(e.source_system, e.id) for e in message.external_ids] == [("core-banking", "CB-1")]


def test_absent_values_stay_unset() -> None:
    message = customer_messages.to_proto(CustomerView(customer(
        birth_date=None, id_type=0, id_number="", id_issuing_country="", id_expires_on=None, address={},
        onboarded_on=None, external_ids=(), created_at=None, updated_at=None)))
    unset = ("birth_date", "id_document", "address", "onboarded_on", "create_time", "update_time")
    assert [field for field in unset if message.HasField(field)] == []
    assert message == customer_pb2.Customer(
        name="customers/C1", customer_id="C1", etag="3", customer_type=1, full_name="Li Wei",  # type: ignore[arg-type]
        mobile_phone="+8613812345678", email="li@example.com", state=1)  # type: ignore[arg-type]
