"""CreateRelationship, ListRelationships and DeleteRelationship through the real server."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.type import date_pb2, decimal_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crm.profile.v1 import relationship_pb2 as r
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, error_reason, field_violations, next_events, row_counter

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
ADMIN = bearer(Role.ADMIN)
MARKETER = bearer(Role.MARKETER)
ORGANISATION = {"customer_type": customer_pb2.CUSTOMER_TYPE_ORGANISATION, "full_name": "Acme Trading Ltd",
                "id_document": customer_pb2.IdDocument()}


async def customer(profile, new_customer, **overrides) -> str:  # type: ignore[no-untyped-def]
    created = await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer(**overrides)), metadata=RM)
    return created.customer.name


async def link(profile, parent, related, kind=r.RELATIONSHIP_TYPE_SPOUSE, request_id="", metadata=RM, **fields):  # type: ignore[no-untyped-def]
    response = await profile.CreateRelationship(r.CreateRelationshipRequest(
        parent=parent, relationship=r.Relationship(related_customer=related, type=kind,
                                                   source_system=fields.pop("source_system", "branch-counter"),
                                                   **fields),
        request_id=request_id, audit=AUDIT), metadata=metadata)
    return response.relationship


async def listed(profile, parent, metadata=RM, **filters):  # type: ignore[no-untyped-def]
    response = await profile.ListRelationships(r.ListRelationshipsRequest(parent=parent, audit=AUDIT, **filters),
                                               metadata=metadata)
    return list(response.relationships)


async def test_a_link_is_created_with_its_mirror(profile, new_customer) -> None:
    husband, wife = await customer(profile, new_customer), await customer(profile, new_customer)
    made = await link(profile, husband, wife, start_date=date_pb2.Date(year=2010, month=5, day=1))
    assert made.name.startswith(f"{husband}/relationships/") and made.related_customer == wife
    assert made.mirror.startswith(f"{wife}/relationships/") and made.create_time.seconds > 0
    (mirror,) = await listed(profile, wife)
    assert mirror.name == made.mirror and mirror.mirror == made.name and mirror.related_customer == husband
    assert mirror.type == r.RELATIONSHIP_TYPE_SPOUSE and mirror.start_date.year == 2010


async def test_a_company_owner_link_mirrors_as_owned_company(profile, new_customer) -> None:
    company = await customer(profile, new_customer, **ORGANISATION)
    owner = await customer(profile, new_customer)
    made = await link(profile, company, owner, r.RELATIONSHIP_TYPE_COMPANY_OWNER,
                      ownership_percent=decimal_pb2.Decimal(value="51.5"))
    assert made.ownership_percent.value == "51.5"
    (mirror,) = await listed(profile, owner)
    assert mirror.type == r.RELATIONSHIP_TYPE_OWNED_COMPANY and mirror.ownership_percent.value == "51.5"
    with pytest.raises(grpc.aio.AioRpcError) as error:  # a person cannot have owners
        await link(profile, owner, company, r.RELATIONSHIP_TYPE_COMPANY_OWNER,
                   ownership_percent=decimal_pb2.Decimal(value="10"))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "RELATIONSHIP_TYPE_MISMATCH"


async def test_household_guarantor_and_list_order_and_filter(profile, new_customer) -> None:
    me = await customer(profile, new_customer)
    others = sorted([await customer(profile, new_customer) for _ in range(3)])
    await link(profile, me, others[2], r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER)
    await link(profile, me, others[0], r.RELATIONSHIP_TYPE_GUARANTOR,
               guaranteed_holding=f"{me}/holdings/LOAN-1")
    await link(profile, me, others[1], r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER)
    assert [(x.type, x.related_customer) for x in await listed(profile, me)] == [
        (r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER, others[1]), (r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER, others[2]),
        (r.RELATIONSHIP_TYPE_GUARANTOR, others[0])]
    guarantees = await listed(profile, others[0], types=[r.RELATIONSHIP_TYPE_GUARANTEED_PARTY])
    assert [x.related_customer for x in guarantees] == [me]
    page = await profile.ListRelationships(r.ListRelationshipsRequest(parent=me, audit=AUDIT, page_size=2),
                                           metadata=RM)
    rest = await profile.ListRelationships(r.ListRelationshipsRequest(
        parent=me, audit=AUDIT, page_size=2, page_token=page.next_page_token), metadata=RM)
    assert len(page.relationships) == 2 and [x.type for x in rest.relationships] == [r.RELATIONSHIP_TYPE_GUARANTOR]


async def test_a_second_spouse_and_a_repeated_link_are_refused(profile, new_customer, profile_service) -> None:
    a, b, c = [await customer(profile, new_customer) for _ in range(3)]
    await link(profile, a, b)
    count = row_counter(profile_service)
    before = await count("customer_relationship")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await link(profile, c, a)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(error.value) == "SPOUSE_EXISTS"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await link(profile, b, a)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await count("customer_relationship") == before


async def test_a_retry_with_the_same_request_id_returns_the_first_link(profile, new_customer) -> None:
    a, b = await customer(profile, new_customer), await customer(profile, new_customer)
    request_id = str(uuid.uuid4())
    first = await link(profile, a, b, r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER, request_id=request_id)
    again = await link(profile, a, b, r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER, request_id=request_id)
    assert again.name == first.name and len(await listed(profile, a)) == 1


@pytest.mark.parametrize(("fields", "field"), [
    ({"source_system": "Not Valid"}, "relationship.source_system"),
    ({"ownership_percent": decimal_pb2.Decimal(value="abc")}, "relationship.ownership_percent"),
    ({"start_date": date_pb2.Date(year=2020, month=2, day=30)}, "relationship.start_date"),
    ({"start_date": date_pb2.Date(year=2099, month=1, day=1)}, "relationship.start_date"),
])
async def test_bad_links_are_named_and_write_nothing(profile, new_customer, profile_service, fields, field) -> None:
    a, b = await customer(profile, new_customer), await customer(profile, new_customer)
    count = row_counter(profile_service)
    before = await count("customer_relationship")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await link(profile, a, b, r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER, **fields)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await count("customer_relationship") == before


async def test_a_link_to_oneself_or_to_nobody_is_refused(profile, new_customer) -> None:
    a = await customer(profile, new_customer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await link(profile, a, a)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "relationship.related_customer" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await link(profile, a, "customers/NOPE-404")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await link(profile, a, "")
    assert "relationship.related_customer" in field_violations(error.value)


async def test_delete_removes_both_sides_and_goes_out_on_the_feed(profile, new_customer, profile_service) -> None:
    a, b = await customer(profile, new_customer), await customer(profile, new_customer)
    made = await link(profile, a, b)
    feed = change_feed(profile, pb.WatchChangesRequest, ADMIN)
    after = await feed_tail(profile_service)
    await profile.DeleteRelationship(r.DeleteRelationshipRequest(name=made.name, audit=AUDIT), metadata=RM)
    assert await listed(profile, a) == [] and await listed(profile, b) == []
    events = await next_events(feed, after, 2, resource_types=["crm.profile.v1.Relationship"])
    assert {e.resource_name for e in events} == {made.name, made.mirror}
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.DeleteRelationship(r.DeleteRelationshipRequest(name=made.name, audit=AUDIT), metadata=RM)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_roles_are_checked(profile, new_customer) -> None:
    a, b = await customer(profile, new_customer), await customer(profile, new_customer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await link(profile, a, b, metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await listed(profile, a, metadata=bearer(Role.SERVICE))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def feed_tail(profile_service) -> str:  # type: ignore[no-untyped-def]
    """The newest change-feed cursor, from the database: reading the feed up to its tail takes long
    once the session's other tests have filled it."""
    import sqlalchemy as sa

    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        return str((await connection.execute(sa.text("SELECT coalesce(max(cursor), 0) FROM outbox_event"))).scalar())


async def test_delete_with_a_stale_etag_is_aborted_and_removes_nothing(profile, new_customer) -> None:
    a, b, c = [await customer(profile, new_customer) for _ in range(3)]
    made = await link(profile, a, b)
    other = await link(profile, a, c, kind=r.RELATIONSHIP_TYPE_HOUSEHOLD_MEMBER)
    assert made.etag and made.etag != other.etag
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.DeleteRelationship(r.DeleteRelationshipRequest(name=made.name, audit=AUDIT, etag=other.etag),
                                         metadata=RM)
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert error_reason(error.value) == "ETAG_MISMATCH"
    assert {x.name for x in await listed(profile, a)} == {made.name, other.name}
    [read] = [x for x in await listed(profile, a) if x.name == made.name]
    assert read.etag == made.etag
    await profile.DeleteRelationship(r.DeleteRelationshipRequest(name=made.name, audit=AUDIT, etag=read.etag),
                                     metadata=RM)
    assert [x.name for x in await listed(profile, a)] == [other.name]
