"""ListStaleFields and ConfirmFields: fields not confirmed within their maximum age."""

from __future__ import annotations

import uuid

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import duration_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import attribute_pb2, data_class_pb2, history_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

ADMIN = bearer(Role.ADMIN)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
ANALYST = bearer(Role.ANALYST)
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
DAY = 86400


async def create(profile, customer, metadata=ADMIN):  # type: ignore[no-untyped-def]
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=customer), metadata=metadata)).customer


async def age(profile_service, customer_id: str, field: str, days: int) -> None:
    """Make a field's last confirmation `days` old, as if it had been confirmed then."""
    _, runtime = profile_service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.text(
            "INSERT INTO field_confirmation (customer_id, field, confirmed_at)"
            " VALUES (:c, :f, now() - make_interval(days => :days))"
            " ON CONFLICT (customer_id, field) DO UPDATE SET confirmed_at = excluded.confirmed_at"),
            {"days": days, "c": customer_id, "f": field})


async def created_ago(profile_service, customer_id: str, days: int) -> None:
    """Make a customer `days` old, as if time had passed since its creation."""
    _, runtime = profile_service
    async with runtime.db.engine.begin() as connection:
        result = await connection.execute(sa.text(
            "UPDATE customer SET created_at = now() - make_interval(days => :days) WHERE customer_id = :c"),
            {"days": days, "c": customer_id})
    assert result.rowcount == 1


async def confirmations(profile_service, customer_id: str) -> dict[str, object]:
    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        rows = await connection.execute(sa.text(
            "SELECT field, confirmed_at FROM field_confirmation WHERE customer_id = :c"), {"c": customer_id})
        return {row.field: row.confirmed_at for row in rows}


async def stale(profile, parent, metadata=RM, **fields):  # type: ignore[no-untyped-def]
    response = await profile.ListStaleFields(history_pb2.ListStaleFieldsRequest(
        parent=parent, audit=PURPOSE, **fields), metadata=metadata)
    return list(response.stale_fields), response.next_page_token


async def test_a_field_older_than_its_maximum_age_is_listed_until_confirmed(
    profile, profile_service, new_customer,
) -> None:
    created = await create(profile, new_customer())
    assert (await stale(profile, created.name))[0] == []
    await age(profile_service, created.customer_id, "mobile_phone", 400)
    await age(profile_service, created.customer_id, "full_name", 4000)  # no maximum age: never stale
    (found,), _ = await stale(profile, created.name)
    assert (found.customer, found.field) == (created.name, "mobile_phone")
    assert found.max_age.seconds == 365 * DAY
    assert 35 * DAY - 60 <= found.overdue.seconds <= 35 * DAY + 60
    confirmed = await profile.ConfirmFields(history_pb2.ConfirmFieldsRequest(
        name=created.name, fields=["mobile_phone"], audit=PURPOSE), metadata=RM)
    assert [c.field for c in confirmed.confirmations] == ["mobile_phone"]
    assert (await stale(profile, created.name))[0] == []
    history = await profile.ListFieldChanges(history_pb2.ListFieldChangesRequest(
        parent=created.name, fields=["mobile_phone"], audit=PURPOSE), metadata=RM)
    latest = history.field_changes[0]
    assert latest.kind == history_pb2.FIELD_CHANGE_KIND_CONFIRMED
    assert latest.old_value == latest.new_value == "+8613812345678"


async def test_a_changed_field_starts_a_new_age(profile, profile_service, new_customer) -> None:
    from google.protobuf import field_mask_pb2

    from crm.profile.v1 import customer_pb2

    created = await create(profile, new_customer())
    await age(profile_service, created.customer_id, "email", 500)
    assert [s.field for s in (await stale(profile, created.name))[0]] == ["email"]
    await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=created.name, email="new@example.com"),
        update_mask=field_mask_pb2.FieldMask(paths=["email"]), audit=PURPOSE), metadata=RM)
    assert (await stale(profile, created.name))[0] == []


async def test_attribute_max_age_applies_to_its_values(profile, profile_service, new_customer) -> None:
    attribute_id = f"s_{uuid.uuid4().hex[:10]}"
    await profile.CreateAttributeDefinition(attribute_pb2.CreateAttributeDefinitionRequest(
        attribute_definition=attribute_pb2.AttributeDefinition(
            attribute_id=attribute_id, display_name="Income", source_system="crm",
            data_class=data_class_pb2.DATA_CLASS_FINANCIAL, value_type=attribute_pb2.ATTRIBUTE_VALUE_TYPE_INT,
            max_age=duration_pb2.Duration(seconds=30 * DAY))), metadata=ADMIN)
    customer = new_customer()
    customer.attributes[attribute_id].int_value = 12000
    created = await create(profile, customer)
    await age(profile_service, created.customer_id, f"attributes.{attribute_id}", 45)
    (found,), _ = await stale(profile, created.name, fields=["attributes"])
    assert found.field == f"attributes.{attribute_id}" and found.max_age.seconds == 30 * DAY


async def test_across_customers_most_overdue_first_within_the_book_and_branch(
    profile, profile_service, new_customer,
) -> None:
    branch = f"BR-{uuid.uuid4().hex[:6]}"
    mine = [await create(profile, new_customer(branch_id=branch)) for _ in range(3)]
    theirs = await create(profile, new_customer(branch_id=branch, relationship_manager_id="rm-other"))
    for days, customer in zip((400, 600, 500), mine, strict=True):
        await age(profile_service, customer.customer_id, "address", days)
    await age(profile_service, theirs.customer_id, "address", 900)
    seen, token = [], ""
    while True:
        page, token = await stale(profile, "customers/-", branch_id=branch, page_size=2, page_token=token)
        seen += [s.customer for s in page]
        if not token:
            break
    assert seen == [mine[1].name, mine[2].name, mine[0].name]  # the other RM's customer is not in the book
    everyone, _ = await stale(profile, "customers/-", metadata=ADMIN, branch_id=branch)
    assert next(s.customer for s in everyone) == theirs.name


async def test_merged_customers_are_not_listed_their_survivors_are(profile, profile_service, new_customer) -> None:
    from crm.profile.v1 import identity_pb2

    branch = f"BR-{uuid.uuid4().hex[:6]}"
    survivor, source = [await create(profile, new_customer(branch_id=branch)) for _ in range(2)]
    for customer in (survivor, source):
        await age(profile_service, customer.customer_id, "address", 400)
    listed, _ = await stale(profile, "customers/-", metadata=ADMIN, branch_id=branch)
    assert {s.customer for s in listed} == {survivor.name, source.name}
    await profile.MergeCustomers(identity_pb2.MergeCustomersRequest(
        name=survivor.name, source_customer=source.name, audit=PURPOSE), metadata=ADMIN)
    listed, _ = await stale(profile, "customers/-", metadata=ADMIN, branch_id=branch)
    assert {s.customer for s in listed} == {survivor.name}


async def test_confirming_refuses_empty_and_unknown_fields_and_changes_nothing(
    profile, profile_service, new_customer,
) -> None:
    created = await create(profile, new_customer(occupation=""))
    await age(profile_service, created.customer_id, "mobile_phone", 400)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.ConfirmFields(history_pb2.ConfirmFieldsRequest(
            name=created.name, fields=["mobile_phone", "occupation"], audit=PURPOSE), metadata=RM)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "FIELD_EMPTY"
    for fields, bad in ((["mobile_phone", "shoe_size"], "fields[1]"), ([], "fields")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await profile.ConfirmFields(history_pb2.ConfirmFieldsRequest(
                name=created.name, fields=fields, audit=PURPOSE), metadata=RM)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad in field_violations(error.value)
    assert [s.field for s in (await stale(profile, created.name))[0]] == ["mobile_phone"]


async def test_roles_and_the_book_are_checked(profile, new_customer) -> None:
    other = await create(profile, new_customer(relationship_manager_id="rm-other"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stale(profile, other.name, metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for call in (stale(profile, other.name), profile.ConfirmFields(history_pb2.ConfirmFieldsRequest(
            name=other.name, fields=["email"], audit=PURPOSE), metadata=RM)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stale(profile, "customers/NO-SUCH-ONE", metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_creation_confirms_every_field_it_sets_without_a_row_per_field(
    profile, profile_service, new_customer,
) -> None:
    from google.protobuf import field_mask_pb2

    from crm.profile.v1 import customer_pb2

    created = await create(profile, new_customer(occupation=""))
    assert await confirmations(profile_service, created.customer_id) == {}
    await created_ago(profile_service, created.customer_id, 800)
    found, _ = await stale(profile, created.name)
    # every field with a maximum age that has a value; occupation (730 days) has none
    assert sorted(s.field for s in found) == ["address", "email", "mobile_phone", "risk_tolerance"]
    assert len({s.last_confirm_time.seconds for s in found}) == 1
    assert 435 * DAY - 60 <= found[0].overdue.seconds <= 435 * DAY + 60
    await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=created.name, email="new@example.com", mobile_phone=""),
        update_mask=field_mask_pb2.FieldMask(paths=["email", "mobile_phone"]), audit=PURPOSE), metadata=RM)
    await profile.ConfirmFields(history_pb2.ConfirmFieldsRequest(
        name=created.name, fields=["address"], audit=PURPOSE), metadata=RM)
    assert sorted(await confirmations(profile_service, created.customer_id)) == ["address", "email"]
    # email changed and address confirmed: their rows count; mobile_phone has no value any more
    assert [s.field for s in (await stale(profile, created.name))[0]] == ["risk_tolerance"]


async def test_confirmations_and_creations_are_merged_most_overdue_first(
    profile, profile_service, new_customer,
) -> None:
    branch = f"BR-{uuid.uuid4().hex[:6]}"
    old, older, oldest = [await create(profile, new_customer(branch_id=branch)) for _ in range(3)]
    await created_ago(profile_service, old.customer_id, 400)
    await age(profile_service, older.customer_id, "email", 500)
    await created_ago(profile_service, oldest.customer_id, 600)
    await age(profile_service, oldest.customer_id, "address", 10)
    await age(profile_service, oldest.customer_id, "mobile_phone", 10)
    await age(profile_service, oldest.customer_id, "risk_tolerance", 10)
    seen, token = [], ""
    while True:
        page, token = await stale(profile, "customers/-", branch_id=branch, fields=["email", "address"],
                                  page_size=1, page_token=token)
        seen += [(s.customer, s.field) for s in page]
        if not token:
            break
    assert seen == [(oldest.name, "email"), (older.name, "email"), (old.name, "address"), (old.name, "email")]


async def test_an_attribute_set_at_creation_is_stale_after_its_maximum_age_until_removed(
    profile, profile_service, new_customer,
) -> None:
    attribute_id = f"c_{uuid.uuid4().hex[:10]}"
    await profile.CreateAttributeDefinition(attribute_pb2.CreateAttributeDefinitionRequest(
        attribute_definition=attribute_pb2.AttributeDefinition(
            attribute_id=attribute_id, display_name="Income", source_system="crm",
            data_class=data_class_pb2.DATA_CLASS_FINANCIAL, value_type=attribute_pb2.ATTRIBUTE_VALUE_TYPE_INT,
            max_age=duration_pb2.Duration(seconds=30 * DAY))), metadata=ADMIN)
    customer = new_customer()
    customer.attributes[attribute_id].int_value = 12000
    created = await create(profile, customer)
    await created_ago(profile_service, created.customer_id, 45)
    (found,), _ = await stale(profile, created.name, fields=["attributes"])
    assert found.field == f"attributes.{attribute_id}" and 15 * DAY - 60 <= found.overdue.seconds <= 15 * DAY + 60
    await profile.SetCustomerAttributes(pb.SetCustomerAttributesRequest(
        name=created.name, remove_attributes=[attribute_id], audit=PURPOSE), metadata=RM)
    assert (await stale(profile, created.name, fields=["attributes"]))[0] == []
