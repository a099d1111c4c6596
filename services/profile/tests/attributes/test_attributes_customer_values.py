"""Custom attribute values and external ids on customers: create, get, update, SetCustomerAttributes."""

from __future__ import annotations

import uuid

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2
from google.type import date_pb2, decimal_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2, data_class_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.vault import PersonalDataVault
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, error_reason, field_violations, next_events, row_counts, tail_cursor

ADMIN = bearer(Role.ADMIN)
ANALYST = bearer(Role.ANALYST)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
V = attribute_pb2.AttributeValue
T = attribute_pb2


async def declare(profile, value_type, data_class=data_class_pb2.DATA_CLASS_FINANCIAL, **validation):  # type: ignore[no-untyped-def]
    sent = T.AttributeDefinition(
        attribute_id=f"a_{uuid.uuid4().hex[:10]}", display_name="x", value_type=value_type, data_class=data_class,
        source_system="crm", validation=T.AttributeValidation(**validation))
    created = await profile.CreateAttributeDefinition(T.CreateAttributeDefinitionRequest(attribute_definition=sent),
                                                      metadata=ADMIN)
    return created.attribute_definition.attribute_id


@pytest.fixture
async def catalogue(profile):  # type: ignore[no-untyped-def]
    """One attribute of each type, keyed by a short name."""
    return {
        "score": await declare(profile, T.ATTRIBUTE_VALUE_TYPE_INT, min_value=decimal_pb2.Decimal(value="300"),
                               max_value=decimal_pb2.Decimal(value="850")),
        "income": await declare(profile, T.ATTRIBUTE_VALUE_TYPE_DECIMAL, max_fraction_digits=2),
        "code": await declare(profile, T.ATTRIBUTE_VALUE_TYPE_STRING, data_class=data_class_pb2.DATA_CLASS_NON_PERSONAL,
                              pattern=r"[A-Z]{2}\d{4}"),
        "vip": await declare(profile, T.ATTRIBUTE_VALUE_TYPE_BOOL, data_class=data_class_pb2.DATA_CLASS_NON_PERSONAL),
        "since": await declare(profile, T.ATTRIBUTE_VALUE_TYPE_DATE, data_class=data_class_pb2.DATA_CLASS_DEMOGRAPHIC,
                               not_in_future=True),
        "marital": await declare(profile, T.ATTRIBUTE_VALUE_TYPE_ENUM, data_class=data_class_pb2.DATA_CLASS_DEMOGRAPHIC,
                                 allowed_values=[T.AllowedValue(value="SINGLE"), T.AllowedValue(value="MARRIED")]),
        "wechat": await declare(profile, T.ATTRIBUTE_VALUE_TYPE_STRING, data_class=data_class_pb2.DATA_CLASS_CONTACT),
    }


def good_values(c: dict[str, str]) -> dict[str, attribute_pb2.AttributeValue]:
    return {
        c["score"]: V(int_value=720), c["income"]: V(decimal_value=decimal_pb2.Decimal(value="15000.50")),
        c["code"]: V(string_value="AB1234"), c["vip"]: V(bool_value=True),
        c["since"]: V(date_value=date_pb2.Date(year=2020, month=5, day=1)), c["marital"]: V(enum_value="MARRIED"),
        c["wechat"]: V(string_value="liwei_88"),
    }


def with_values(customer: customer_pb2.Customer, values: dict[str, attribute_pb2.AttributeValue]):  # type: ignore[no-untyped-def]
    for key, value in values.items():
        customer.attributes[key].CopyFrom(value)
    return customer


async def create(profile, customer, metadata=RM):  # type: ignore[no-untyped-def]
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=customer), metadata=metadata)).customer


async def get(profile, customer_id, metadata=RM):  # type: ignore[no-untyped-def]
    return (await profile.GetCustomer(pb.GetCustomerRequest(name=f"customers/{customer_id}", audit=PURPOSE),
                                      metadata=metadata)).customer


async def test_values_of_every_type_round_trip(profile, new_customer, catalogue) -> None:
    sent = with_values(new_customer(), good_values(catalogue))
    created = await create(profile, sent)
    fetched = await get(profile, sent.customer_id)
    assert dict(fetched.attributes) == dict(sent.attributes) == dict(created.attributes)
    assert fetched.attributes[catalogue["income"]].decimal_value.value == "15000.50"


async def test_personal_values_are_sealed_at_rest_and_left_out_for_masked_roles(
    profile, profile_service, new_customer, catalogue,
) -> None:
    sent = with_values(new_customer(), good_values(catalogue))
    await create(profile, sent)
    masked = await get(profile, sent.customer_id, metadata=ANALYST)
    assert catalogue["wechat"] not in masked.attributes
    assert f"attributes.{catalogue['wechat']}" in masked.masked_fields
    assert masked.attributes[catalogue["score"]].int_value == 720
    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        row = (await connection.execute(sa.text(
            "SELECT value_text, value_sealed FROM customer_attribute WHERE customer_id = :c AND attribute_id = :a"),
            {"c": sent.customer_id, "a": catalogue["wechat"]})).one()
    assert row.value_text is None and b"liwei_88" not in row.value_sealed


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("score", V(string_value="720"), "ATTRIBUTE_TYPE_MISMATCH"),
        ("score", V(int_value=900), "ATTRIBUTE_VALIDATION_FAILED"),
        ("income", V(decimal_value=decimal_pb2.Decimal(value="1.234")), "ATTRIBUTE_VALIDATION_FAILED"),
        ("income", V(decimal_value=decimal_pb2.Decimal(value="lots")), "INVALID_ARGUMENT"),
        ("code", V(string_value="ab12"), "ATTRIBUTE_VALIDATION_FAILED"),
        ("since", V(date_value=date_pb2.Date(year=2999, month=1, day=1)), "ATTRIBUTE_VALIDATION_FAILED"),
        ("since", V(date_value=date_pb2.Date(year=2020, month=2, day=30)), "INVALID_ARGUMENT"),
        ("marital", V(enum_value="DIVORCED"), "ATTRIBUTE_VALIDATION_FAILED"),
        ("vip", V(), "ATTRIBUTE_TYPE_MISMATCH"),
    ],
)
async def test_bad_value_is_invalid_argument_naming_it_and_writes_nothing(
    profile, profile_service, new_customer, catalogue, name, value, reason,
) -> None:
    sent = with_values(new_customer(), {catalogue[name]: value})
    before = await row_counts(profile_service, "customer", "customer_attribute", "field_change")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, sent)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f'customer.attributes["{catalogue[name]}"]' in field_violations(error.value)
    assert error_reason(error.value) == reason
    assert await row_counts(profile_service, "customer", "customer_attribute", "field_change") == before


async def test_unknown_attribute_is_named_with_every_other_bad_field(profile, profile_service, new_customer) -> None:
    sent = with_values(new_customer(mobile_phone="12345"), {"no_such_attribute": V(int_value=1)})
    before = await row_counts(profile_service, "customer", "customer_attribute")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, sent)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {'customer.attributes["no_such_attribute"]', "customer.mobile_phone"} <= set(field_violations(error.value))
    with pytest.raises(grpc.aio.AioRpcError) as alone:
        await create(profile, with_values(new_customer(), {"no_such_attribute": V(int_value=1)}))
    assert error_reason(alone.value) == "UNKNOWN_ATTRIBUTE"
    assert await row_counts(profile_service, "customer", "customer_attribute") == before


async def test_set_customer_attributes_sets_and_removes_in_one_change(profile, new_customer, catalogue) -> None:
    created = await create(profile, with_values(new_customer(), {catalogue["score"]: V(int_value=700),
                                                                 catalogue["vip"]: V(bool_value=False)}))
    request = pb.SetCustomerAttributesRequest(
        name=created.name, attributes={catalogue["score"]: V(int_value=710)}, remove_attributes=[catalogue["vip"]],
        etag=created.etag, audit=PURPOSE)
    changed = (await profile.SetCustomerAttributes(request, metadata=RM)).customer
    assert dict(changed.attributes) == {catalogue["score"]: V(int_value=710)}
    assert changed.etag != created.etag
    # A retry writes the same values: no new version (the etag is the new one now).
    request.etag = changed.etag
    again = (await profile.SetCustomerAttributes(request, metadata=RM)).customer
    assert again.etag == changed.etag
    request.etag = created.etag
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.SetCustomerAttributes(request, metadata=RM)
    assert error.value.code() == grpc.StatusCode.ABORTED


async def test_set_customer_attributes_names_bad_keys_and_writes_nothing(
    profile, profile_service, new_customer, catalogue,
) -> None:
    created = await create(profile, new_customer())
    before = await row_counts(profile_service, "customer_attribute", "field_change")
    cases = [
        (pb.SetCustomerAttributesRequest(name=created.name, attributes={"nope": V(int_value=1)}, audit=PURPOSE),
         'attributes["nope"]', "UNKNOWN_ATTRIBUTE"),
        (pb.SetCustomerAttributesRequest(name=created.name, remove_attributes=["nope"], audit=PURPOSE),
         "remove_attributes[0]", "UNKNOWN_ATTRIBUTE"),
        (pb.SetCustomerAttributesRequest(name=created.name, attributes={catalogue["score"]: V(int_value=1)},
                                         audit=PURPOSE), f'attributes["{catalogue["score"]}"]',
         "ATTRIBUTE_VALIDATION_FAILED"),
        (pb.SetCustomerAttributesRequest(name=created.name, attributes={catalogue["score"]: V(int_value=400)},
                                         remove_attributes=[catalogue["score"]], audit=PURPOSE),
         "remove_attributes[0]", "ATTRIBUTE_VALIDATION_FAILED"),
    ]
    for request, field, reason in cases:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await profile.SetCustomerAttributes(request, metadata=RM)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in field_violations(error.value)
        assert error_reason(error.value) == reason
    assert await row_counts(profile_service, "customer_attribute", "field_change") == before


async def test_set_customer_attributes_checks_the_role_and_the_book(profile, new_customer, catalogue) -> None:
    created = await create(profile, new_customer(relationship_manager_id="rm-other"), metadata=ADMIN)
    request = pb.SetCustomerAttributesRequest(name=created.name, attributes={catalogue["score"]: V(int_value=700)},
                                              audit=PURPOSE)
    for metadata in (ANALYST, RM):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await profile.SetCustomerAttributes(request, metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_update_customer_sets_one_attribute_by_its_path(profile, new_customer, catalogue) -> None:
    created = await create(profile, with_values(new_customer(), {catalogue["score"]: V(int_value=700),
                                                                 catalogue["vip"]: V(bool_value=True)}))
    changes = with_values(customer_pb2.Customer(name=created.name), {catalogue["score"]: V(int_value=800)})
    updated = (await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=changes, update_mask=field_mask_pb2.FieldMask(paths=[f"attributes.{catalogue['score']}"]),
        audit=PURPOSE), metadata=RM)).customer
    assert updated.attributes[catalogue["score"]].int_value == 800
    assert updated.attributes[catalogue["vip"]].bool_value is True
    replaced = (await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=created.name), update_mask=field_mask_pb2.FieldMask(paths=["attributes"]),
        audit=PURPOSE), metadata=RM)).customer
    assert dict(replaced.attributes) == {}


async def test_external_ids_are_stored_unique_per_system_and_found_by_the_repository(
    profile, profile_service, new_customer,
) -> None:
    core_id = f"CB{uuid.uuid4().hex[:8]}"
    sent = new_customer(external_ids=[customer_pb2.ExternalId(source_system="core-banking", id=core_id),
                                      customer_pb2.ExternalId(source_system="card-system", id="K-1")])
    await create(profile, sent)
    fetched = await get(profile, sent.customer_id)
    assert {(e.source_system, e.id) for e in fetched.external_ids} == {("core-banking", core_id),
                                                                        ("card-system", "K-1")}
    other = new_customer(external_ids=[customer_pb2.ExternalId(source_system="core-banking", id=core_id)])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, other)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error.value) == "EXTERNAL_ID_TAKEN"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await get(profile, other.customer_id)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    _, runtime = profile_service
    repository = CustomerRepository(PersonalDataVault.__new__(PersonalDataVault))
    async with runtime.db.unit_of_work(read_only=True) as session:
        found = await repository.customer_ids_by_external_id(session, source_system="core-banking",
                                                             external_id=core_id)
    assert found == [sent.customer_id]


@pytest.mark.parametrize(
    ("external_ids", "field"),
    [
        ([customer_pb2.ExternalId(source_system="Core Banking", id="1")], "customer.external_ids[0].source_system"),
        ([customer_pb2.ExternalId(source_system="core-banking", id="")], "customer.external_ids[0].id"),
        ([customer_pb2.ExternalId(source_system="core-banking", id="é")], "customer.external_ids[0].id"),
        ([customer_pb2.ExternalId(source_system="core-banking", id="1")] * 2, "customer.external_ids[1]"),
    ],
)
async def test_bad_external_id_is_invalid_argument_naming_it(profile, new_customer, external_ids, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, new_customer(external_ids=external_ids))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_attribute_changes_reach_the_feed_masked_like_the_customer(profile, new_customer, catalogue) -> None:
    feed = change_feed(profile, pb.WatchChangesRequest, bearer(Role.SERVICE, subject="svc-segment"))
    created = await create(profile, new_customer())
    cursor = await tail_cursor(feed)
    await profile.SetCustomerAttributes(pb.SetCustomerAttributesRequest(
        name=created.name, attributes={catalogue["score"]: V(int_value=700), catalogue["wechat"]: V(string_value="w")},
        audit=PURPOSE), metadata=RM)
    events = await next_events(feed, cursor, 1, resource_types=["crm.profile.v1.Customer"])
    payload = customer_pb2.Customer()
    assert events[0].resource_name == created.name and events[0].payload.Unpack(payload)
    assert payload.attributes[catalogue["score"]].int_value == 700
    assert catalogue["wechat"] not in payload.attributes
    assert f"attributes.{catalogue['wechat']}" in payload.masked_fields
