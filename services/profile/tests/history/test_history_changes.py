"""ListFieldChanges: every change to a customer field, written with the change, read by role."""

from __future__ import annotations

import uuid

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.type import interval_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2, data_class_pb2, history_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, field_violations, row_counts

ADMIN = bearer(Role.ADMIN, subject="admin-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
ANALYST = bearer(Role.ANALYST)
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)


async def create(profile, customer):  # type: ignore[no-untyped-def]
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=customer), metadata=RM)).customer


async def update(profile, name, paths, **fields):  # type: ignore[no-untyped-def]
    return (await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=name, **fields), update_mask=field_mask_pb2.FieldMask(paths=paths),
        audit=PURPOSE), metadata=RM)).customer


async def changes(profile, name, metadata=RM, **fields):  # type: ignore[no-untyped-def]
    response = await profile.ListFieldChanges(history_pb2.ListFieldChangesRequest(
        parent=name, audit=PURPOSE, **fields), metadata=metadata)
    return list(response.field_changes), response.next_page_token


async def test_create_and_update_are_recorded_newest_first(profile, new_customer) -> None:
    created = await create(profile, new_customer())
    await update(profile, created.name, ["mobile_phone", "gender"], mobile_phone="+8613900000000",
                 gender=customer_pb2.GENDER_FEMALE)
    found, _ = await changes(profile, created.name)
    latest = {c.field: c for c in found[:2]}
    assert set(latest) == {"mobile_phone", "gender"}
    phone = latest["mobile_phone"]
    assert (phone.old_value, phone.new_value, phone.masked) == ("+8613812345678", "+8613900000000", False)
    assert (phone.kind, phone.source, phone.actor) == (history_pb2.FIELD_CHANGE_KIND_SET,
                                                       history_pb2.CHANGE_SOURCE_API, "rm-007")
    assert phone.source_system == "crm" and phone.change_time.seconds > 0
    assert phone.name.startswith(f"{created.name}/fieldChanges/")
    assert (latest["gender"].old_value, latest["gender"].new_value) == ("GENDER_MALE", "GENDER_FEMALE")
    created_fields = {c.field for c in found[2:]}
    assert {"full_name", "id_document.number", "mobile_phone", "address", "birth_date"} <= created_fields
    birth = next(c for c in found[2:] if c.field == "birth_date")
    assert (birth.old_value, birth.new_value) == ("", "1985-03-14")


async def test_personal_values_are_sealed_in_history_and_masked_for_other_roles(
    profile, profile_service, new_customer,
) -> None:
    created = await create(profile, new_customer())
    await update(profile, created.name, ["mobile_phone"], mobile_phone="+8613900000000")
    masked, _ = await changes(profile, created.name, metadata=ADMIN, fields=["mobile_phone"])
    assert masked[0].masked and masked[0].new_value.endswith("0000") and "139000" not in masked[0].new_value
    gender, _ = await changes(profile, created.name, metadata=ADMIN, fields=["gender"])
    assert gender[0].new_value == "GENDER_MALE" and not gender[0].masked
    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        rows = (await connection.execute(sa.text(
            "SELECT old_text, new_text, new_sealed FROM field_change"
            " WHERE customer_id = :c AND field = 'mobile_phone'"),
            {"c": created.customer_id})).all()
    assert rows and all(r.old_text is None and r.new_text is None and b"13900000000" not in r.new_sealed
                        for r in rows)


async def test_a_path_selects_its_sub_fields_and_unknown_paths_are_refused(profile, new_customer) -> None:
    created = await create(profile, new_customer())
    found, _ = await changes(profile, created.name, fields=["id_document"])
    assert {c.field for c in found} == {"id_document.type", "id_document.number", "id_document.issuing_country"}
    for fields, bad in ((["shoe_size"], "fields[0]"), (["email", "attributes.Bad-Id"], "fields[1]")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await changes(profile, created.name, fields=fields)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad in field_violations(error.value)


async def test_attribute_changes_are_recorded_set_and_cleared(profile, new_customer) -> None:
    attribute_id = f"h_{uuid.uuid4().hex[:10]}"
    await profile.CreateAttributeDefinition(attribute_pb2.CreateAttributeDefinitionRequest(
        attribute_definition=attribute_pb2.AttributeDefinition(
            attribute_id=attribute_id, display_name="Income", source_system="crm",
            data_class=data_class_pb2.DATA_CLASS_FINANCIAL, value_type=attribute_pb2.ATTRIBUTE_VALUE_TYPE_INT)),
        metadata=ADMIN)
    created = await create(profile, new_customer())
    for value in (attribute_pb2.AttributeValue(int_value=12000), attribute_pb2.AttributeValue(int_value=15000)):
        await profile.SetCustomerAttributes(pb.SetCustomerAttributesRequest(
            name=created.name, attributes={attribute_id: value}, audit=PURPOSE), metadata=RM)
    await profile.SetCustomerAttributes(pb.SetCustomerAttributesRequest(
        name=created.name, remove_attributes=[attribute_id], audit=PURPOSE), metadata=RM)
    found, _ = await changes(profile, created.name, fields=["attributes"])
    assert [(c.field, c.kind, c.old_value, c.new_value) for c in found] == [
        (f"attributes.{attribute_id}", history_pb2.FIELD_CHANGE_KIND_CLEARED, "15000", ""),
        (f"attributes.{attribute_id}", history_pb2.FIELD_CHANGE_KIND_SET, "12000", "15000"),
        (f"attributes.{attribute_id}", history_pb2.FIELD_CHANGE_KIND_SET, "", "12000"),
    ]


async def test_a_refused_change_records_no_history(profile, profile_service, new_customer) -> None:
    created = await create(profile, new_customer())
    before = await row_counts(profile_service, "field_change")
    with pytest.raises(grpc.aio.AioRpcError):
        await update(profile, created.name, ["mobile_phone", "email"], mobile_phone="+8613900000000", email="bad")
    assert await row_counts(profile_service, "field_change") == before


async def test_pages_and_the_interval_filter(profile, new_customer) -> None:
    created = await create(profile, new_customer())
    everything, _ = await changes(profile, created.name, page_size=1000)
    seen, token = [], ""
    while True:
        page, token = await changes(profile, created.name, page_size=3, page_token=token)
        seen += [c.name for c in page]
        if not token:
            break
    assert seen == [c.name for c in everything]
    future = timestamp_pb2.Timestamp(seconds=everything[0].change_time.seconds + 3600)
    later, _ = await changes(profile, created.name, change_interval=interval_pb2.Interval(start_time=future))
    assert later == []


async def test_roles_and_the_book_are_checked(profile, new_customer) -> None:
    other = (await profile.CreateCustomer(pb.CreateCustomerRequest(
        customer=new_customer(relationship_manager_id="rm-other")), metadata=ADMIN)).customer
    for metadata in (RM, ANALYST):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await changes(profile, other.name, metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await changes(profile, "customers/NO-SUCH-ONE", metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ListFieldChanges(history_pb2.ListFieldChangesRequest(parent=other.name), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_creation_is_one_stored_entry_listed_per_field_with_its_value_at_creation(
    profile, profile_service, new_customer,
) -> None:
    created = await create(profile, new_customer())
    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        stored = (await connection.execute(sa.text(
            "SELECT field, old_text, new_text, old_sealed, new_sealed FROM field_change WHERE customer_id = :c"),
            {"c": created.customer_id})).all()
    assert len(stored) == 1 and stored[0].field == "" and stored[0].old_sealed is stored[0].new_sealed is None
    assert "mobile_phone" in stored[0].new_text and "+86" not in stored[0].new_text  # names, never values
    for phone in ("+8613900000000", "+8613911111111"):
        await update(profile, created.name, ["mobile_phone"], mobile_phone=phone)
    found, _ = await changes(profile, created.name, fields=["mobile_phone", "gender"])
    assert [(c.field, c.old_value, c.new_value) for c in found] == [
        ("mobile_phone", "+8613900000000", "+8613911111111"),
        ("mobile_phone", "+8613812345678", "+8613900000000"),
        ("mobile_phone", "", "+8613812345678"),  # the value at creation, not the current one
        ("gender", "", "GENDER_MALE"),  # never changed: the current value
    ]
    assert found[2].change_time == found[3].change_time and found[2].source == history_pb2.CHANGE_SOURCE_API
    everything, _ = await changes(profile, created.name, page_size=1000)
    assert len({c.name for c in everything}) == len(everything)  # a creation's fields have names of their own
    creation = [c for c in everything if c.name.rsplit("/", 1)[1].count("-")]
    assert [c.field for c in creation] == sorted((c.field for c in creation), reverse=True)
    assert {"full_name", "id_document.number", "address", "birth_date", "kyc_status"} <= {c.field for c in creation}
    masked, _ = await changes(profile, created.name, metadata=ADMIN, fields=["full_name"])
    assert masked[0].masked and masked[0].new_value != "Li Wei" and masked[0].new_value


async def test_a_deleted_and_recreated_customer_keeps_each_creation_apart(profile, new_customer) -> None:
    first = await create(profile, new_customer(occupation="teacher"))
    await update(profile, first.name, ["occupation"], occupation="engineer")
    await profile.DeleteCustomer(pb.DeleteCustomerRequest(name=first.name, audit=PURPOSE), metadata=ADMIN)
    await create(profile, new_customer(customer_id=first.customer_id, occupation="surgeon",
                                       mobile_phone="+8613977777777"))
    found, _ = await changes(profile, first.name, fields=["occupation", "mobile_phone"])
    assert [(c.field, c.old_value, c.new_value) for c in found] == [
        ("occupation", "", "surgeon"),  # the second creation: the record as it is
        ("mobile_phone", "", "+8613977777777"),
        ("occupation", "teacher", "engineer"),
        ("occupation", "", "teacher"),  # the first creation: the old value of its later change
        ("mobile_phone", "", ""),  # never changed before the record was deleted: not known any more
    ]
