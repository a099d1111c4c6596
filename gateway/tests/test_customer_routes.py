"""Customer routes end to end: gateway -> real profile service -> real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf import json_format

from crm.common.v1 import audit_pb2
from crm.profile.v1 import audit_log_pb2, customer_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer

PROBLEM = "application/problem+json"
CUSTOMER_SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)


def invalid_names(response) -> set[str]:  # type: ignore[no-untyped-def]
    return {param["name"] for param in response.json().get("invalid_params", [])}


async def test_get_returns_the_customer_as_json(client, headers, profile_stub, new_customer) -> None:
    sent = json_format.ParseDict(new_customer(), customer_pb2.Customer())
    await profile_stub.CreateCustomer(pb.CreateCustomerRequest(customer=sent), metadata=bearer(Role.ADMIN))

    response = await client.get(f"/v1/customers/{sent.customer_id}", headers=headers(Role.CHANNEL_APP))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    direct = await profile_stub.GetCustomer(
        pb.GetCustomerRequest(name=f"customers/{sent.customer_id}", audit=CUSTOMER_SERVICE),
        metadata=bearer(Role.CHANNEL_APP))
    assert body == json_format.MessageToDict(direct.customer, preserving_proto_field_name=True)
    assert body["name"] == f"customers/{sent.customer_id}"
    assert body["full_name"] == "Li Wei"
    assert body["mobile_phone"] == "+8613812345678"
    assert body["birth_date"] == {"year": 1985, "month": 3, "day": 14}
    assert body["customer_type"] == "CUSTOMER_TYPE_INDIVIDUAL"
    assert body["id_document"]["number"] == "11010519491231002X"
    assert body["address"]["locality"] == "Beijing"
    assert "masked_fields" not in body


async def test_create_answers_201_with_location_then_get_finds_it(client, headers, create_customer,
                                                                  new_customer) -> None:
    sent = new_customer()
    rm = headers(Role.RELATIONSHIP_MANAGER, subject="rm-007")
    created = await create_customer(sent, rm)

    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/customers/{sent['customer_id']}"
    assert created.headers["cache-control"] == "no-store"
    assert created.json()["customer_id"] == sent["customer_id"]
    assert created.json()["etag"]
    fetched = await client.get(created.headers["location"], headers=rm)
    assert fetched.status_code == 200
    assert fetched.json() == created.json()
    assert fetched.json()["full_name"] == "Li Wei"


async def test_create_without_id_gets_a_generated_one(client, headers, create_customer, new_customer) -> None:
    created = await create_customer(new_customer(customer_id=None))
    assert created.status_code == 201, created.text
    assert uuid.UUID(created.json()["customer_id"])
    assert (await client.get(created.headers["location"], headers=headers(Role.ADMIN))).status_code == 200


async def test_idempotency_key_replays_the_first_create(client, headers, new_customer) -> None:
    key = str(uuid.uuid4())
    sent = new_customer()
    caller = {**headers(Role.CHANNEL_APP, subject="app-mobile"), "Idempotency-Key": key}
    first = await client.post("/v1/customers", json=sent, headers=caller)
    again = await client.post("/v1/customers", json=sent, headers=caller)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()


async def test_malformed_idempotency_key_is_a_400_naming_the_header(client, headers, create_customer,
                                                                     new_customer) -> None:
    sent = new_customer()
    response = await client.post("/v1/customers", json=sent,
                                 headers={**headers(Role.ADMIN), "Idempotency-Key": "not-a-uuid"})
    assert response.status_code == 400
    assert invalid_names(response) == {"Idempotency-Key"}
    missing = await client.get(f"/v1/customers/{sent['customer_id']}", headers=headers(Role.ADMIN))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"full_name": None}, "customer.full_name"),
        ({"mobile_phone": "13812345678"}, "customer.mobile_phone"),
        ({"email": "not-an-email"}, "customer.email"),
        ({"nationality": "China"}, "customer.nationality"),
    ],
    ids=["missing-full-name", "malformed-mobile-phone", "malformed-email", "bad-nationality"],
)
async def test_bad_customer_is_a_400_problem_naming_the_field_and_creates_nothing(
    client, headers, create_customer, new_customer, overrides, field,
) -> None:
    sent = new_customer(**overrides)
    response = await create_customer(sent)

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == 400
    assert problem["type"].endswith(":invalid-argument")
    assert problem["title"] == "Invalid argument"
    assert problem["reason"] == "INVALID_ARGUMENT"
    assert field in invalid_names(response)
    assert field in problem["detail"]
    missing = await client.get(f"/v1/customers/{sent['customer_id']}", headers=headers(Role.ADMIN))
    assert missing.status_code == 404


async def test_every_bad_field_is_named_at_once(create_customer, new_customer) -> None:
    response = await create_customer(new_customer(full_name="", mobile_phone="12", email="x"))
    assert response.status_code == 400
    assert {"customer.full_name", "customer.mobile_phone", "customer.email"} <= invalid_names(response)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"nickname": "Wei"}, "customer.nickname"),
        ({"gender": "GENDER_UNKNOWN"}, "customer.gender"),
        ({"full_name": 42}, "customer.full_name"),
        ({"birth_date": {"year": 1985, "month": "March", "day": 14}}, "customer.birth_date.month"),
        ({"external_ids": [{"source_system": "core-banking", "id": 7}]}, "customer.external_ids[0].id"),
        ({"attributes": {"tier": {"string_value": "gold", "enum_value": "GOLD"}}}, "customer.attributes.tier"),
    ],
    ids=["unknown-field", "unknown-enum-value", "wrong-json-type", "nested-field", "list-item", "two-of-a-oneof"],
)
async def test_body_of_the_wrong_shape_is_a_400_naming_the_field(
    client, headers, create_customer, new_customer, overrides, field,
) -> None:
    sent = new_customer(**overrides)
    response = await create_customer(sent)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert invalid_names(response) == {field}
    missing = await client.get(f"/v1/customers/{sent['customer_id']}", headers=headers(Role.ADMIN))
    assert missing.status_code == 404


async def test_body_that_is_not_json_is_a_400(client, headers) -> None:
    response = await client.post("/v1/customers", content=b"{not json",
                                 headers={**headers(Role.ADMIN), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert invalid_names(response) == {"customer"}


async def test_duplicate_customer_id_is_a_409(create_customer, new_customer) -> None:
    sent = new_customer()
    assert (await create_customer(sent)).status_code == 201
    again = await create_customer(sent)
    assert again.status_code == 409
    assert again.json()["type"].endswith(":already-exists")
    assert again.json()["reason"] == "CUSTOMER_EXISTS"


@pytest.mark.parametrize("customer_id", ["has space", "x" * 65, "semi;colon", "caf%C3%A9"])
async def test_malformed_customer_id_is_a_400_naming_it(client, headers, customer_id) -> None:
    response = await client.get(f"/v1/customers/{customer_id}", headers=headers(Role.ADMIN))
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert invalid_names(response) == {"customer_id"}


async def test_unknown_customer_is_a_404_problem(client, headers) -> None:
    response = await client.get("/v1/customers/NO-SUCH-CUSTOMER", headers=headers(Role.ADMIN))
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"].endswith(":not-found")
    assert problem["reason"] == "CUSTOMER_NOT_FOUND"
    assert "invalid_params" not in problem


async def test_analyst_sees_personal_data_masked(client, headers, create_customer, new_customer) -> None:
    sent = new_customer()
    assert (await create_customer(sent)).status_code == 201
    response = await client.get(f"/v1/customers/{sent['customer_id']}", headers=headers(Role.ANALYST))
    assert response.status_code == 200
    body = response.json()
    assert body["full_name"] == "L* W**"
    assert "full_name" in body["masked_fields"]


async def test_relationship_manager_outside_their_book_is_a_403(client, headers, create_customer,
                                                                new_customer) -> None:
    sent = new_customer(relationship_manager_id="rm-other")
    assert (await create_customer(sent)).status_code == 201
    response = await client.get(f"/v1/customers/{sent['customer_id']}",
                                headers=headers(Role.RELATIONSHIP_MANAGER, subject="rm-007"))
    assert response.status_code == 403
    assert response.json()["reason"] == "OUTSIDE_BOOK"


async def test_reads_are_audited_for_customer_service_as_the_end_user(
    client, headers, profile_stub, create_customer, new_customer,
) -> None:
    sent = new_customer()
    assert (await create_customer(sent)).status_code == 201
    read = await client.get(f"/v1/customers/{sent['customer_id']}", headers=headers(Role.ADMIN, subject="emp-42"))
    assert read.status_code == 200
    # The audit writer commits before the read answers, so the record is there.
    listed = await profile_stub.ListAuditRecords(audit_log_pb2.ListAuditRecordsRequest(
        customer=f"customers/{sent['customer_id']}", actions=[audit_log_pb2.AUDIT_ACTION_READ],
        audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_AUDIT, justification="gateway test")),
        metadata=bearer(Role.AUDITOR))
    assert [(r.actor, r.purpose) for r in listed.audit_records] == [
        ("emp-42", audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)]


async def test_idempotency_key_reused_with_another_body_is_a_400_naming_the_header(client, headers,
                                                                                   new_customer) -> None:
    caller = {**headers(Role.CHANNEL_APP, subject="app-mobile"), "Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/customers", json=new_customer(), headers=caller)
    assert first.status_code == 201
    other = new_customer()
    refused = await client.post("/v1/customers", json=other, headers=caller)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "REQUEST_ID_REUSED"
    assert invalid_names(refused) == {"Idempotency-Key"}
    missing = await client.get(f"/v1/customers/{other['customer_id']}", headers=headers(Role.ADMIN))
    assert missing.status_code == 404
