"""The attribute catalogue RPCs against a real PostgreSQL, through the in-process server."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.type import decimal_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import attribute_pb2, data_class_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations, row_counter

ADMIN = bearer(Role.ADMIN)
ANALYST = bearer(Role.ANALYST)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)


def attribute_id() -> str:
    return f"attr_{uuid.uuid4().hex[:10]}"


def definition(**overrides: object) -> attribute_pb2.AttributeDefinition:
    fields: dict[str, object] = {
        "attribute_id": attribute_id(), "display_name": "Credit score",
        "value_type": attribute_pb2.ATTRIBUTE_VALUE_TYPE_INT, "data_class": data_class_pb2.DATA_CLASS_FINANCIAL,
        "source_system": "card-system",
        "validation": attribute_pb2.AttributeValidation(min_value=decimal_pb2.Decimal(value="300"),
                                                        max_value=decimal_pb2.Decimal(value="850")),
    }
    fields.update(overrides)
    return attribute_pb2.AttributeDefinition(**fields)  # type: ignore[arg-type]


async def create(profile, sent, metadata=ADMIN, request_id=""):  # type: ignore[no-untyped-def]
    response = await profile.CreateAttributeDefinition(attribute_pb2.CreateAttributeDefinitionRequest(
        attribute_definition=sent, request_id=request_id), metadata=metadata)
    return response.attribute_definition


async def test_create_then_get_returns_the_definition(profile) -> None:
    sent = definition(max_age=duration_pb2.Duration(seconds=180 * 86400))
    created = await create(profile, sent)
    assert created.name == f"attributeDefinitions/{sent.attribute_id}"
    assert created.etag and created.create_time.seconds > 0
    fetched = (await profile.GetAttributeDefinition(attribute_pb2.GetAttributeDefinitionRequest(
        name=created.name), metadata=ANALYST)).attribute_definition
    assert fetched == created
    assert fetched.validation.min_value.value == "300" and fetched.validation.max_value.value == "850"
    assert fetched.max_age.seconds == 180 * 86400


async def test_retry_with_the_same_request_id_returns_the_first_definition(profile, profile_service) -> None:
    request_id, sent = str(uuid.uuid4()), definition()  # a retry resends the same body
    first = await create(profile, sent, request_id=request_id)
    count = row_counter(profile_service)
    before = await count("attribute_definition")
    again = await create(profile, sent, request_id=request_id)
    assert again.attribute_id == first.attribute_id
    assert await count("attribute_definition") == before


async def test_taken_attribute_id_is_already_exists(profile) -> None:
    sent = definition()
    await create(profile, sent)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, sent)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error.value) == "ATTRIBUTE_EXISTS"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"attribute_id": "Bad-Id"}, "attribute_definition.attribute_id"),
        ({"attribute_id": "mobile_phone"}, "attribute_definition.attribute_id"),
        ({"display_name": ""}, "attribute_definition.display_name"),
        ({"value_type": attribute_pb2.ATTRIBUTE_VALUE_TYPE_UNSPECIFIED}, "attribute_definition.value_type"),
        ({"data_class": data_class_pb2.DATA_CLASS_UNSPECIFIED}, "attribute_definition.data_class"),
        ({"source_system": "Core Banking"}, "attribute_definition.source_system"),
        ({"max_age": duration_pb2.Duration(seconds=3600)}, "attribute_definition.max_age"),
        ({"validation": attribute_pb2.AttributeValidation(pattern="^[A-Z")},
         "attribute_definition.validation.pattern"),
        ({"validation": attribute_pb2.AttributeValidation(min_value=decimal_pb2.Decimal(value="9"),
                                                          max_value=decimal_pb2.Decimal(value="1"))},
         "attribute_definition.validation.max_value"),
        ({"validation": attribute_pb2.AttributeValidation(min_value=decimal_pb2.Decimal(value="abc"))},
         "attribute_definition.validation.min_value"),
        ({"value_type": attribute_pb2.ATTRIBUTE_VALUE_TYPE_ENUM, "validation": attribute_pb2.AttributeValidation()},
         "attribute_definition.validation.allowed_values"),
    ],
)
async def test_bad_definition_is_invalid_argument_naming_the_field_and_writes_nothing(
    profile, profile_service, overrides, field,
) -> None:
    count = row_counter(profile_service)
    before = await count("attribute_definition")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, definition(**overrides))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await count("attribute_definition") == before


async def test_validation_member_that_does_not_suit_the_type_is_named(profile) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, definition(validation=attribute_pb2.AttributeValidation(pattern="^[0-9]+$")))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "attribute_definition.validation.pattern" in field_violations(error.value)


async def test_only_admins_write_the_catalogue(profile) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(profile, definition(), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_list_filters_and_pages_in_attribute_id_order(profile) -> None:
    system = f"sys-{uuid.uuid4().hex[:8]}"
    ids = sorted([(await create(profile, definition(source_system=system))).attribute_id for _ in range(3)])
    seen, token = [], ""
    while True:
        page = await profile.ListAttributeDefinitions(attribute_pb2.ListAttributeDefinitionsRequest(
            source_system=system, page_size=2, page_token=token), metadata=RM)
        seen += [d.attribute_id for d in page.attribute_definitions]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    other = await profile.ListAttributeDefinitions(attribute_pb2.ListAttributeDefinitionsRequest(
        source_system=system, data_class=data_class_pb2.DATA_CLASS_CONTACT), metadata=RM)
    assert list(other.attribute_definitions) == []


async def test_update_changes_the_masked_fields_and_checks_the_etag(profile) -> None:
    created = await create(profile, definition())
    changed = attribute_pb2.AttributeDefinition(name=created.name, etag=created.etag, display_name="Score",
                                                description="ignored: not in the mask")
    updated = (await profile.UpdateAttributeDefinition(attribute_pb2.UpdateAttributeDefinitionRequest(
        attribute_definition=changed, update_mask=field_mask_pb2.FieldMask(paths=["display_name"])),
        metadata=ADMIN)).attribute_definition
    assert updated.display_name == "Score" and updated.description == ""
    assert updated.etag != created.etag
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.UpdateAttributeDefinition(attribute_pb2.UpdateAttributeDefinitionRequest(
            attribute_definition=changed, update_mask=field_mask_pb2.FieldMask(paths=["display_name"])),
            metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.UpdateAttributeDefinition(attribute_pb2.UpdateAttributeDefinitionRequest(
            attribute_definition=attribute_pb2.AttributeDefinition(name=created.name, attribute_id="other"),
            update_mask=field_mask_pb2.FieldMask(paths=["attribute_id"])), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in field_violations(error.value)


async def _hold(profile, new_customer, attribute, value):  # type: ignore[no-untyped-def]
    customer = new_customer()
    customer.attributes[attribute].CopyFrom(value)
    await profile.CreateCustomer(pb.CreateCustomerRequest(customer=customer), metadata=ADMIN)
    return customer


async def test_type_change_and_enum_value_removal_are_refused_while_values_exist(profile, new_customer) -> None:
    created = await create(profile, definition(
        value_type=attribute_pb2.ATTRIBUTE_VALUE_TYPE_ENUM, data_class=data_class_pb2.DATA_CLASS_DEMOGRAPHIC,
        validation=attribute_pb2.AttributeValidation(allowed_values=[
            attribute_pb2.AllowedValue(value="SINGLE"), attribute_pb2.AllowedValue(value="MARRIED")])))
    await _hold(profile, new_customer, created.attribute_id, attribute_pb2.AttributeValue(enum_value="MARRIED"))
    for changed, paths in [
        (attribute_pb2.AttributeDefinition(name=created.name, value_type=attribute_pb2.ATTRIBUTE_VALUE_TYPE_STRING),
         ["value_type", "validation"]),
        (attribute_pb2.AttributeDefinition(name=created.name, validation=attribute_pb2.AttributeValidation(
            allowed_values=[attribute_pb2.AllowedValue(value="SINGLE")])), ["validation"]),
        (attribute_pb2.AttributeDefinition(name=created.name, data_class=data_class_pb2.DATA_CLASS_SPECIAL_CATEGORY),
         ["data_class"]),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await profile.UpdateAttributeDefinition(attribute_pb2.UpdateAttributeDefinitionRequest(
                attribute_definition=changed, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=ADMIN)
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION, paths
        assert error_reason(error.value) == "ATTRIBUTE_IN_USE"
    # Adding an allowed value is fine.
    widened = await profile.UpdateAttributeDefinition(attribute_pb2.UpdateAttributeDefinitionRequest(
        attribute_definition=attribute_pb2.AttributeDefinition(
            name=created.name, validation=attribute_pb2.AttributeValidation(allowed_values=[
                attribute_pb2.AllowedValue(value=v) for v in ("SINGLE", "MARRIED", "WIDOWED")])),
        update_mask=field_mask_pb2.FieldMask(paths=["validation"])), metadata=ADMIN)
    assert len(widened.attribute_definition.validation.allowed_values) == 3


async def test_delete_in_use_needs_force_which_removes_values_with_history(profile, new_customer) -> None:
    created = await create(profile, definition())
    holder = await _hold(profile, new_customer, created.attribute_id, attribute_pb2.AttributeValue(int_value=700))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.DeleteAttributeDefinition(attribute_pb2.DeleteAttributeDefinitionRequest(name=created.name),
                                                metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "ATTRIBUTE_IN_USE"
    removed = await profile.DeleteAttributeDefinition(attribute_pb2.DeleteAttributeDefinitionRequest(
        name=created.name, force=True), metadata=ADMIN)
    assert removed.removed_value_count == 1
    customer = (await profile.GetCustomer(pb.GetCustomerRequest(name=f"customers/{holder.customer_id}",
                                                                audit=PURPOSE), metadata=ADMIN)).customer
    assert created.attribute_id not in customer.attributes
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetAttributeDefinition(attribute_pb2.GetAttributeDefinitionRequest(name=created.name),
                                             metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_unused_with_a_stale_etag_is_aborted(profile) -> None:
    created = await create(profile, definition())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.DeleteAttributeDefinition(attribute_pb2.DeleteAttributeDefinitionRequest(
            name=created.name, etag="999"), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.ABORTED
    await profile.DeleteAttributeDefinition(attribute_pb2.DeleteAttributeDefinitionRequest(
        name=created.name, etag=created.etag), metadata=ADMIN)
