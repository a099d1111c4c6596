"""GetCustomer and CreateCustomer pinned to the byte: the answer for a fixed customer, the audit,
change-feed and history rows each call leaves behind, and the errors. The expectations are built
here from what was sent and what the database stored, not by the service's own mapping, so that
work done to make these calls cheaper cannot change what they answer or write."""

from __future__ import annotations

import re
import uuid
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.audit import AuditEntry, record_hash
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, field_violations

PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="call 42")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-pinned")
OTHER_RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-elsewhere")
ANALYST = bearer(Role.ANALYST, subject="analyst-pinned")
PLATFORM = bearer(Role.SERVICE, subject="svc-pinned")
GET = "/crm.profile.v1.ProfileService/GetCustomer"
CREATE = "/crm.profile.v1.ProfileService/CreateCustomer"


async def rows(profile_service: Any, sql: str, **params: object) -> list[Any]:
    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        return list((await connection.execute(sa.text(sql), params)).all())


def answer(sent: customer_pb2.Customer, stored: Any, *, masked: dict[str, object] | None = None
           ) -> customer_pb2.Customer:
    """The Customer message the service must answer: what was sent, the server's own fields as
    stored, and for a masked reader the masked values and their paths."""
    expected = customer_pb2.Customer()
    expected.CopyFrom(sent)
    expected.name = f"customers/{sent.customer_id}"
    expected.etag = str(stored.version)
    expected.state = customer_pb2.CUSTOMER_STATE_ACTIVE
    expected.onboarded_on.year, expected.onboarded_on.month, expected.onboarded_on.day = (
        stored.onboarded_on.year, stored.onboarded_on.month, stored.onboarded_on.day)
    expected.create_time.FromDatetime(stored.created_at)
    expected.update_time.FromDatetime(stored.updated_at)
    for path, value in (masked or {}).items():
        if path == "birth_date":
            expected.birth_date.month = expected.birth_date.day = 0
        elif path == "id_document.number":
            expected.id_document.number = str(value)
        elif path == "address":  # masked: the region alone; left out: nothing
            expected.ClearField("address")
            if value:
                expected.address.region_code = str(value)
        else:
            setattr(expected, path, value)
        expected.masked_fields.append(path)
    return expected


async def stored_row(profile_service: Any, customer_id: str) -> Any:
    (row,) = await rows(profile_service, "SELECT version, onboarded_on, created_at, updated_at FROM customer"
                                         " WHERE customer_id = :id", id=customer_id)
    return row


async def audit_rows(profile_service: Any, name: str, action: str) -> list[Any]:
    return await rows(profile_service, "SELECT * FROM audit_record WHERE resource_name = :name AND action = :action"
                                       " ORDER BY seq", name=name, action=action)


def check_hash(record: Any) -> None:
    entry = AuditEntry(principal=record.principal, action=record.action, resource_name=record.resource_name,
                       purpose=record.purpose, justification=record.justification, trace_id=record.trace_id,
                       actor_roles=tuple(record.actor_roles), method=record.method, fields=tuple(record.fields),
                       outcome=record.outcome)
    assert record.hash_recipe == 2
    assert record.hash == record_hash(record.prev_hash, record.recorded_at, entry, chain_id=record.chain_id)


async def test_get_answers_these_bytes_in_clear_and_masked(profile, profile_service, new_customer) -> None:
    sent = new_customer(relationship_manager_id="rm-pinned")
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent), metadata=RM)
    stored = await stored_row(profile_service, sent.customer_id)
    request = pb.GetCustomerRequest(name=f"customers/{sent.customer_id}", audit=PURPOSE)

    clear = await profile.GetCustomer(request, metadata=RM)
    assert clear.SerializeToString() == pb.GetCustomerResponse(customer=answer(sent, stored)).SerializeToString()

    masked = await profile.GetCustomer(request, metadata=ANALYST)
    expected = answer(sent, stored, masked={"full_name": "L* W**", "birth_date": None,
                                            "id_document.number": "**************002X", "mobile_phone": "",
                                            "email": "", "address": ""})
    assert masked.SerializeToString() == pb.GetCustomerResponse(customer=expected).SerializeToString()


async def test_a_read_is_audited_before_it_is_answered(profile, profile_service, new_customer) -> None:
    sent = new_customer(relationship_manager_id="rm-pinned")
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent), metadata=RM)
    name = f"customers/{sent.customer_id}"
    await profile.GetCustomer(pb.GetCustomerRequest(name=name, audit=PURPOSE), metadata=RM)

    (record,) = await audit_rows(profile_service, name, "customer.read")  # committed: no waiting
    assert record.chain_id.startswith("reads:")
    assert (record.principal, record.purpose, record.justification, record.trace_id) == (
        "rm-pinned", "CUSTOMER_SERVICE", "call 42", "")
    assert (list(record.actor_roles), record.method, record.outcome) == (["relationship_manager"], GET, "ALLOWED")
    assert list(record.fields) == ["full_name", "birth_date", "id_document.number", "mobile_phone", "email",
                                   "address"]
    check_hash(record)


async def test_a_refused_read_is_audited_and_answers_permission_denied(profile, profile_service,
                                                                      new_customer) -> None:
    sent = new_customer(relationship_manager_id="rm-pinned")
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent), metadata=RM)
    name = f"customers/{sent.customer_id}"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetCustomer(pb.GetCustomerRequest(name=name, audit=PURPOSE), metadata=OTHER_RM)

    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(error.value)
    assert (info.reason, info.domain) == ("OUTSIDE_BOOK", "profile.crm")
    assert error.value.details() == "customer is outside the caller's book"
    (record,) = await audit_rows(profile_service, name, "customer.read")
    assert (record.principal, record.outcome, list(record.fields), record.method) == (
        "rm-elsewhere", "DENIED", [], GET)
    check_hash(record)


async def test_an_unknown_customer_answers_not_found_and_audits_nothing(profile, profile_service) -> None:
    name = f"customers/C{uuid.uuid4().hex[:12].upper()}"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetCustomer(pb.GetCustomerRequest(name=name, audit=PURPOSE), metadata=RM)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error.value.details() == f"customer {name.removeprefix('customers/')} not found"
    assert error_info(error.value).reason == "CUSTOMER_NOT_FOUND"
    assert await audit_rows(profile_service, name, "customer.read") == []


async def test_a_malformed_name_answers_invalid_argument_naming_the_field(profile) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetCustomer(pb.GetCustomerRequest(name="clients/1", audit=PURPOSE), metadata=RM)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_violations(error.value)) == ["name"]


async def test_create_answers_these_bytes_and_leaves_these_rows(profile, profile_service, new_customer) -> None:
    sent = new_customer(relationship_manager_id="rm-pinned")
    request_id = str(uuid.uuid4())
    created = await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent, request_id=request_id),
                                           metadata=RM)
    stored = await stored_row(profile_service, sent.customer_id)
    assert stored.version == 1
    assert created.SerializeToString() == pb.CreateCustomerResponse(
        customer=answer(sent, stored)).SerializeToString()
    name = f"customers/{sent.customer_id}"

    (record,) = await audit_rows(profile_service, name, "customer.create")
    assert (record.chain_id, record.principal, record.purpose, record.justification, record.trace_id) == (
        "changes", "rm-pinned", "DATA_MANAGEMENT", "", "")
    assert (list(record.actor_roles), record.method, record.outcome) == (["relationship_manager"], CREATE, "ALLOWED")
    assert list(record.fields) == [
        "customer_type", "full_name", "birth_date", "gender", "nationality", "id_document.type",
        "id_document.number", "id_document.issuing_country", "mobile_phone", "email", "address", "kyc_status",
        "risk_tolerance", "relationship_manager_id", "branch_id", "onboarded_on"]
    check_hash(record)

    (event,) = await rows(profile_service, "SELECT * FROM outbox_event WHERE resource_name = :name", name=name)
    assert (event.resource_type, event.change_type, event.actor) == ("crm.profile.v1.Customer", 1, "rm-pinned")
    # The call's trace when a tracer provider is installed (a test run earlier in the session may
    # have installed one), none otherwise: not a byte this change may move.
    assert re.fullmatch(r"|[0-9a-f]{32}", event.trace_id), event.trace_id
    as_the_feed_reads_it = await profile.GetCustomer(pb.GetCustomerRequest(name=name, audit=PURPOSE),
                                                     metadata=PLATFORM)
    payload = any_pb2.Any()
    payload.Pack(as_the_feed_reads_it.customer)
    assert event.payload == payload.SerializeToString()

    history = await rows(profile_service, "SELECT field, kind, old_text, new_text, old_sealed IS NULL AS no_old,"
                                          " personal, actor, source, source_system, origin FROM field_change"
                                          " WHERE customer_id = :id ORDER BY field_change_id", id=sent.customer_id)
    # One creation entry naming the fields set (never their values).
    assert [tuple(h) for h in history] == [("", 1, None, '["address","birth_date","branch_id","customer_type",'
                                            '"email","full_name","gender","id_document.issuing_country",'
                                            '"id_document.number","id_document.type","kyc_status","mobile_phone",'
                                            '"nationality","onboarded_on","relationship_manager_id",'
                                            '"risk_tolerance"]', True, False, "rm-pinned", 1, "crm", "")]
    (key,) = await rows(profile_service, "SELECT principal, method, resource_name FROM idempotency_key"
                                         " WHERE request_id = :id", id=uuid.UUID(request_id))
    assert tuple(key) == ("rm-pinned", "CreateCustomer", name)


async def test_a_create_retried_answers_the_same_bytes_and_writes_nothing_more(profile, profile_service,
                                                                              new_customer) -> None:
    sent = new_customer(relationship_manager_id="rm-pinned")
    request = pb.CreateCustomerRequest(customer=sent, request_id=str(uuid.uuid4()))
    first = await profile.CreateCustomer(request, metadata=RM)
    again = await profile.CreateCustomer(request, metadata=RM)
    assert again.SerializeToString() == first.SerializeToString()
    name = f"customers/{sent.customer_id}"
    assert len(await audit_rows(profile_service, name, "customer.create")) == 1
    assert len(await rows(profile_service, "SELECT 1 FROM outbox_event WHERE resource_name = :name", name=name)) == 1


async def test_a_taken_customer_id_answers_already_exists(profile, profile_service, new_customer) -> None:
    sent = new_customer(relationship_manager_id="rm-pinned")
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent), metadata=RM)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.CreateCustomer(pb.CreateCustomerRequest(customer=sent), metadata=RM)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error.value.details() == f"customer {sent.customer_id} already exists"
    info = error_info(error.value)
    assert (info.reason, dict(info.metadata)) == ("CUSTOMER_EXISTS", {"customer_id": sent.customer_id})
    name = f"customers/{sent.customer_id}"
    assert len(await audit_rows(profile_service, name, "customer.create")) == 1
