"""The request body schema states what the service requires, and a body valid by it is created.

The document is read from `/openapi.json`; bodies built from its own limits and enums are sent
through the gateway to the real profile service. A refusal would mean the schema lets through
something the service refuses for a reason the schema could have stated.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from crmkit.auth import Role

NULL = {"type": "null"}


@pytest.fixture
async def schemas(client) -> dict[str, Any]:  # type: ignore[type-arg]
    document = (await client.get("/openapi.json")).json()
    return document["components"]["schemas"]  # type: ignore[no-any-return]


def options(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return prop.get("anyOf", [prop])


def enum_of(prop: dict[str, Any]) -> list[str]:
    return next(option["enum"] for option in options(prop) if "enum" in option)


def limit(prop: dict[str, Any], key: str) -> int:
    return next(option[key] for option in options(prop) if key in option)  # type: ignore[no-any-return]


async def test_the_create_body_requires_type_and_name_and_refuses_null_for_them(schemas) -> None:
    customer = schemas["CustomerInput"]
    assert set(customer["required"]) == {"customer_type", "full_name"}
    for name in ("customer_type", "full_name"):
        assert NULL not in options(customer["properties"][name])
    assert "CUSTOMER_TYPE_UNSPECIFIED" not in enum_of(customer["properties"]["customer_type"])
    assert customer["properties"]["full_name"]["maxLength"] == 200


@pytest.mark.parametrize(("schema", "field", "pattern"), [
    ("CustomerInput", "customer_id", r"^[A-Za-z0-9_-]{1,64}$"),
    ("CustomerInput", "mobile_phone", r"^\+[1-9][0-9]{7,14}$"),
    ("CustomerInput", "nationality", r"^[A-Z]{2}$"),
    ("IdDocumentInput", "number", r"^[A-Z0-9-]{4,32}$"),
    ("PostalAddressInput", "region_code", r"^[A-Z]{2}$"),
    ("ExternalIdInput", "source_system", r"^[a-z][a-z0-9-]{0,63}$"),
])
async def test_formats_the_service_enforces_are_patterns(schemas, schema, field, pattern) -> None:
    assert limit(schemas[schema]["properties"][field], "pattern") == pattern


async def test_nested_messages_state_their_own_requirements(schemas) -> None:
    assert set(schemas["ExternalIdInput"]["required"]) == {"source_system", "id"}
    assert schemas["PostalAddressInput"]["required"] == ["region_code"]
    assert set(schemas["DateInput"]["required"]) == {"year", "month", "day"}
    assert schemas["IdDocumentInput"]["dependentSchemas"]["number"]["required"] == ["type"]
    assert limit(schemas["CustomerInput"]["properties"]["external_ids"], "maxItems") == 20


async def test_a_body_of_nulls_is_refused_by_the_gateway_naming_the_required_fields(client, headers, schemas) -> None:
    body = dict.fromkeys(schemas["CustomerInput"]["properties"])
    response = await client.post("/v1/customers", json=body, headers=headers(Role.ADMIN))
    assert response.status_code == 400
    names = {param["name"] for param in response.json()["invalid_params"]}
    assert names == {"customer.customer_type", "customer.full_name"}


def minimal(schemas: dict[str, Any]) -> dict[str, Any]:
    return {"customer_type": enum_of(schemas["CustomerInput"]["properties"]["customer_type"])[0], "full_name": "X"}


def at_the_limits(schemas: dict[str, Any]) -> dict[str, Any]:
    """Every free-text field at its maximum length, lists at their most items."""
    props = schemas["CustomerInput"]["properties"]
    address = schemas["PostalAddressInput"]["properties"]["address_lines"]
    line = "a" * limit(address["anyOf"][0]["items"] if "anyOf" in address else address["items"], "maxLength")
    text = {name: "a" * limit(props[name], "maxLength")
            for name in ("full_name", "occupation", "relationship_manager_id", "branch_id")}
    return {
        **minimal(schemas), **text,
        "customer_id": "C" + uuid.uuid4().hex.upper() + "_-" * 15,
        "mobile_phone": "+1" + "2" * 14,
        "email": "a" * 64 + "@" + "b" * 180 + ".cn",
        "nationality": "FR", "preferred_language": "zh-Hans-CN",
        "id_document": {"type": "ID_DOCUMENT_TYPE_PASSPORT", "number": "-" * 32, "issuing_country": "FR",
                        "expires_on": {"year": 9999, "month": 12, "day": 31}},
        "address": {"region_code": "CN", "address_lines": [line] * limit(address, "maxItems")},
        "external_ids": [{"source_system": "a" + "b" * 63, "id": f"~{i} {uuid.uuid4().hex}" + "x" * 80 + "!"}
                         for i in range(limit(props["external_ids"], "maxItems"))],
        "onboarded_on": {"year": 1, "month": 1, "day": 1},
    }


def with_nulls(schemas: dict[str, Any]) -> dict[str, Any]:
    """Every optional field null: proto3 JSON for "not given"."""
    customer = schemas["CustomerInput"]
    optional = set(customer["properties"]) - set(customer["required"])
    return {**dict.fromkeys(optional), **minimal(schemas)}


def every_enum_value(schemas: dict[str, Any]) -> list[dict[str, Any]]:
    props = schemas["CustomerInput"]["properties"]
    bodies = []
    for field in ("customer_type", "gender", "kyc_status", "risk_tolerance"):
        bodies += [{**minimal(schemas), field: value} for value in enum_of(props[field])]
    return bodies


@pytest.mark.parametrize("make", [minimal, at_the_limits, with_nulls, every_enum_value])
async def test_bodies_valid_by_the_schema_are_created(client, headers, schemas, make) -> None:
    made = make(schemas)
    for body in made if isinstance(made, list) else [made]:
        response = await client.post("/v1/customers", json=body, headers=headers(Role.ADMIN))
        assert response.status_code == 201, (body, response.json())


@pytest.mark.parametrize(("schema", "required", "refused_zero"), [
    ("ComplaintInput", {"customer", "channel", "description"}, {"channel": "CHANNEL_UNSPECIFIED"}),
    ("ConsentRecordInput", {"purpose", "channel", "decision", "evidence"},
     {"purpose": "CONSENT_PURPOSE_UNSPECIFIED", "decision": "CONSENT_DECISION_UNSPECIFIED"}),
    ("ConsentEvidenceInput", {"source", "effective_time", "recorded_by"}, {"source": "CONSENT_SOURCE_MERGE"}),
    ("OfferResponseInput", {"customer", "offer", "channel", "type", "response_time"},
     {"type": "RESPONSE_TYPE_UNSPECIFIED"}),
])
async def test_every_channel_body_states_what_its_service_requires(schemas, schema, required, refused_zero) -> None:
    body = schemas[schema]
    assert set(body["required"]) == required
    for name in required:
        assert NULL not in options(body["properties"][name])
    for name, value in refused_zero.items():
        assert value not in enum_of(body["properties"][name])


@pytest.mark.parametrize(("path", "schema", "expected"), [
    ("/v1/complaints", "ComplaintInput", {"complaint.customer", "complaint.channel", "complaint.description"}),
    ("/v1/offer-responses", "OfferResponseInput",
     {"response.customer", "response.offer", "response.channel", "response.type", "response.response_time"}),
])
async def test_a_channel_body_of_nulls_is_refused_before_any_call(client, headers, schemas, path, schema,
                                                                   expected) -> None:
    body = dict.fromkeys(schemas[schema]["properties"])
    response = await client.post(path, json=body, headers={**headers(Role.ADMIN), "Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 400, response.text
    assert {param["name"] for param in response.json()["invalid_params"]} == expected


async def test_consent_decisions_come_one_to_fifty_at_a_time(client, headers, schemas) -> None:
    consents = schemas["ConsentRecordsInput"]["properties"]["consents"]
    assert (consents["minItems"], consents["maxItems"]) == (1, 50)
    response = await client.post("/v1/customers/C1/consents", json={"consents": []}, headers=headers(Role.ADMIN))
    assert response.status_code == 400
    assert [param["name"] for param in response.json()["invalid_params"]] == ["body.consents"]
