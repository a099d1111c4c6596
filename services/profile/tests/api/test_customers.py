"""ProfileService customer RPCs against a real PostgreSQL, through a real in-process server."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

SERVICE_PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
ADMIN = bearer(Role.ADMIN)
ANALYST = bearer(Role.ANALYST)


async def create(profile, customer, metadata=RM, request_id=""):  # type: ignore[no-untyped-def]
    response = await profile.CreateCustomer(
        pb.CreateCustomerRequest(customer=customer, request_id=request_id), metadata=metadata)
    return response.customer


async def get(profile, customer_id, metadata=RM):  # type: ignore[no-untyped-def]
    response = await profile.GetCustomer(
        pb.GetCustomerRequest(name=f"customers/{customer_id}", audit=SERVICE_PURPOSE), metadata=metadata)
    return response.customer


async def test_create_then_get_returns_the_same_customer(profile, new_customer) -> None:
    sent = new_customer()
    created = await create(profile, sent)
    fetched = await get(profile, sent.customer_id)
    assert created.name == f"customers/{sent.customer_id}"
    assert fetched.full_name == "Li Wei"
    assert fetched.id_document.number == "11010519491231002X"
    assert fetched.mobile_phone == "+8613812345678"
    assert fetched.address.locality == "Beijing"
    assert fetched.birth_date.year == 1985
    assert fetched.etag == created.etag != ""
    assert list(fetched.masked_fields) == []


async def test_personal_data_is_encrypted_at_rest(profile, profile_service, new_customer) -> None:
    import sqlalchemy as sa

    sent = new_customer()
    await create(profile, sent)
    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        row = (await connection.execute(sa.text(
            "SELECT full_name_sealed, mobile_phone_sealed, key_id FROM customer WHERE customer_id = :id"),
            {"id": sent.customer_id})).one()
    assert b"Li Wei" not in row.full_name_sealed
    assert b"13812345678" not in row.mobile_phone_sealed
    assert row.key_id == "k1"


async def test_relationship_manager_cannot_read_outside_their_book(profile, new_customer) -> None:
    sent = new_customer(relationship_manager_id="rm-other")
    await create(profile, sent, metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(profile, sent.customer_id, metadata=RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error.value) == "OUTSIDE_BOOK"


async def test_unknown_customer_is_not_found(profile) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(profile, "NO-SUCH-CUSTOMER")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value) == "CUSTOMER_NOT_FOUND"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"full_name": ""}, "customer.full_name"),
        ({"customer_type": customer_pb2.CUSTOMER_TYPE_UNSPECIFIED}, "customer.customer_type"),
        ({"mobile_phone": "13812345678"}, "customer.mobile_phone"),
        ({"email": "not-an-email"}, "customer.email"),
        ({"customer_id": "has space"}, "customer.customer_id"),
        ({"nationality": "China"}, "customer.nationality"),
        ({"id_document": customer_pb2.IdDocument(
            type=customer_pb2.ID_DOCUMENT_TYPE_NATIONAL_ID, number="110105194912310021", issuing_country="CN")},
         "customer.id_document.number"),
    ],
)
async def test_bad_field_is_invalid_argument_naming_it_and_writes_nothing(
    profile, new_customer, overrides, field,
) -> None:
    sent = new_customer(**overrides)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, sent)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    if sent.customer_id and " " not in sent.customer_id:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await get(profile, sent.customer_id)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_every_bad_field_is_named_at_once(profile, new_customer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, new_customer(full_name="", mobile_phone="12", email="x"))
    assert {"customer.full_name", "customer.mobile_phone", "customer.email"} <= set(field_violations(error.value))


async def test_impossible_date_is_invalid_argument(profile, new_customer) -> None:
    from google.type import date_pb2

    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, new_customer(birth_date=date_pb2.Date(year=1990, month=2, day=30)))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "customer.birth_date" in field_violations(error.value)


async def test_duplicate_customer_id_is_already_exists(profile, new_customer) -> None:
    sent = new_customer()
    await create(profile, sent)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, sent)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_retry_with_the_same_request_id_returns_the_first_customer(profile, new_customer) -> None:
    request_id = str(uuid.uuid4())
    first = await create(profile, new_customer(customer_id=""), request_id=request_id)
    again = await create(profile, new_customer(customer_id=""), request_id=request_id)
    assert again.customer_id == first.customer_id


async def test_calls_without_a_valid_token_are_unauthenticated(profile) -> None:
    for metadata in [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await profile.GetCustomer(pb.GetCustomerRequest(name="customers/x", audit=SERVICE_PURPOSE),
                                      metadata=metadata)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_role_not_allowed_is_permission_denied_and_writes_nothing(profile, new_customer) -> None:
    sent = new_customer()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, sent, metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError):
        await get(profile, sent.customer_id, metadata=ADMIN)


async def test_get_requires_an_audit_purpose(profile, new_customer) -> None:
    sent = new_customer()
    await create(profile, sent)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetCustomer(pb.GetCustomerRequest(name=sent.name or f"customers/{sent.customer_id}"),
                                  metadata=RM)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "audit.purpose" in field_violations(error.value)


async def test_update_changes_masked_fields_only_and_checks_the_etag(profile, new_customer) -> None:
    created = await create(profile, new_customer())
    changed = customer_pb2.Customer(name=created.name, etag=created.etag, mobile_phone="+8613900000000",
                                    full_name="ignored because not in the mask")
    updated = (await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=changed, update_mask=field_mask_pb2.FieldMask(paths=["mobile_phone"]), audit=SERVICE_PURPOSE),
        metadata=RM)).customer
    assert updated.mobile_phone == "+8613900000000"
    assert updated.full_name == "Li Wei"
    assert updated.etag != created.etag
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.UpdateCustomer(pb.UpdateCustomerRequest(
            customer=changed, update_mask=field_mask_pb2.FieldMask(paths=["mobile_phone"]), audit=SERVICE_PURPOSE),
            metadata=RM)
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert (await get(profile, created.customer_id)).mobile_phone == "+8613900000000"


async def test_update_of_an_immutable_field_is_invalid_argument(profile, new_customer) -> None:
    created = await create(profile, new_customer())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.UpdateCustomer(pb.UpdateCustomerRequest(
            customer=customer_pb2.Customer(name=created.name, customer_id="other"),
            update_mask=field_mask_pb2.FieldMask(paths=["customer_id"]), audit=SERVICE_PURPOSE), metadata=RM)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in field_violations(error.value)


async def test_list_pages_through_a_branch_with_opaque_tokens(profile, new_customer) -> None:
    branch = f"BR-{uuid.uuid4().hex[:6]}"
    ids = sorted([(await create(profile, new_customer(branch_id=branch))).customer_id for _ in range(5)])
    seen, token = [], ""
    while True:
        page = await profile.ListCustomers(pb.ListCustomersRequest(
            branch_id=branch, page_size=2, page_token=token, audit=SERVICE_PURPOSE), metadata=ADMIN)
        seen += [c.customer_id for c in page.customers]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListCustomers(pb.ListCustomersRequest(
            branch_id="another", page_size=2, page_token=page.next_page_token or "tampered", audit=SERVICE_PURPOSE),
            metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_delete_removes_the_customer(profile, new_customer) -> None:
    created = await create(profile, new_customer())
    await profile.DeleteCustomer(pb.DeleteCustomerRequest(name=created.name, etag=created.etag,
                                                          audit=SERVICE_PURPOSE), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(profile, created.customer_id, metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_rpc_not_served_yet_is_unimplemented_not_internal(profile) -> None:
    from google.protobuf import message_factory

    from crm.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
    from crm_profile.api.profile_servicer import ProfileServicer

    base = profile_service_pb2_grpc.ProfileServiceServicer
    service = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"]
    unserved = [m for m in service.methods if not m.client_streaming and not m.server_streaming
                and getattr(ProfileServicer, m.name) is getattr(base, m.name)]
    if not unserved:
        pytest.skip("every RPC is served")
    request_type = message_factory.GetMessageClass(unserved[0].input_type)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await getattr(profile, unserved[0].name)(request_type(), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(("overrides", "field"), [
    ({"full_name": "a\u0000b"}, "customer.full_name"),
    ({"full_name": "Li\u202eWei"}, "customer.full_name"),
    ({"occupation": "teacher\n"}, "customer.occupation"),
    ({"branch_id": "b\u2028"}, "customer.branch_id"),
])
async def test_control_characters_in_text_are_refused_naming_the_field_and_the_rule(
    profile, new_customer, overrides, field,
) -> None:
    sent = new_customer(**overrides)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, sent)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error.value)[field] == "must not contain control characters"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get(profile, sent.customer_id)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_unknown_enum_number_says_so_rather_than_asking_for_a_value(profile, new_customer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, new_customer(id_document=customer_pb2.IdDocument(type=42, number="E1234567")))
    assert field_violations(error.value)["customer.id_document.type"] == "42 is not a known IdDocumentType value"
    with pytest.raises(grpc.aio.AioRpcError) as purpose:
        await profile.GetCustomer(pb.GetCustomerRequest(
            name="customers/C1", audit=audit_pb2.AuditContext(purpose=999)), metadata=RM)
    assert field_violations(purpose.value)["audit.purpose"] == "999 is not a known AccessPurpose value"
