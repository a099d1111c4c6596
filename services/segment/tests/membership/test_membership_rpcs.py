"""Preview, materialise and membership pages through a real in-process server on PostgreSQL.

Customers are seeded into the read model directly, as profile's feed would leave them, each test
under its own branch id so that tests sharing the database never see each other's customers.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2

from crm.common.v1 import operation_pb2
from crm.segment.v1 import segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.features.tables import customer_feature
from crmkit.auth import Role
from crmkit.testing import bearer, eventually, field_violations, row_counts

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
MARKETER = bearer(Role.MARKETER, subject="marketer-1")


def branch() -> str:
    return f"B-{uuid.uuid4().hex[:12]}"


def customers(branch_id: str, count: int = 40) -> list[dict[str, Any]]:
    """A varied population: ages with gaps, AUM on both sides of the thresholds, some removed."""
    rows = []
    for i in range(count):
        rows.append({
            "customer_id": f"{branch_id}-c{i:03d}", "branch_id": branch_id, "removed": i % 13 == 12,
            "age_years": None if i % 7 == 0 else 20 + (i * 3) % 50, "aum": 10_000 * (i % 10) ** 3,
            "product_categories": ["PAYROLL", "SAVINGS"] if i % 3 == 0 else ["FUND"],
            "marketing_channels": ["EMAIL"] if i % 4 == 0 else [], "customer_type": 1 + i % 2,
            "features_as_of": datetime(2026, 12, 1, tzinfo=UTC),
        })
    return rows


async def seed(service: tuple[Any, Any], rows: list[dict[str, Any]]) -> None:
    _, runtime = service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.insert(customer_feature), rows)


async def change(service: tuple[Any, Any], customer_id: str, **values: Any) -> None:
    _, runtime = service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.update(customer_feature).where(customer_feature.c.customer_id == customer_id)
                                 .values(**values))


async def sql_ids(service: tuple[Any, Any], where: str, **params: Any) -> set[str]:
    """The customers a hand-written condition selects."""
    _, runtime = service
    async with runtime.db.engine.connect() as connection:
        rows = await connection.execute(sa.text(
            f"SELECT customer_id FROM customer_feature WHERE NOT removed AND {where}"), params)  # noqa: S608 - test text
        return {row.customer_id for row in rows}


async def create_segment(segments: Any, rule: str) -> segment_pb2.Segment:
    suffix = uuid.uuid4().hex[:10]
    response = await segments.CreateSegment(pb.CreateSegmentRequest(segment=segment_pb2.Segment(
        segment_id=f"members-{suffix}", display_name=f"Members {suffix}", rule=rule)), metadata=ANALYST)
    return response.segment


async def materialise(segments: Any, name: str) -> operation_pb2.Operation:
    """Start a materialisation and wait for it to end; the finished operation."""
    started = await segments.MaterialiseSegment(pb.MaterialiseSegmentRequest(name=name), metadata=ANALYST)

    async def final() -> operation_pb2.Operation:
        response = await segments.GetOperation(pb.GetOperationRequest(name=started.operation.name), metadata=ANALYST)
        return response.operation

    return await eventually(final, until=lambda op: op.state in (operation_pb2.OPERATION_STATE_SUCCEEDED,
                                                                  operation_pb2.OPERATION_STATE_FAILED,
                                                                  operation_pb2.OPERATION_STATE_CANCELLED),
                            what="the materialisation to finish")


async def all_members(segments: Any, name: str, page_size: int = 7) -> list[segment_pb2.SegmentMember]:
    found, token = [], ""
    while True:
        page = await segments.ListSegmentMembers(pb.ListSegmentMembersRequest(
            parent=name, page_size=page_size, page_token=token), metadata=MARKETER)
        found += list(page.members)
        token = page.next_page_token
        if not token:
            return found


async def all_changes(segments: Any, name: str) -> list[segment_pb2.MembershipChange]:
    found, token = [], ""
    while True:
        page = await segments.ListMembershipChanges(pb.ListMembershipChangesRequest(
            parent=name, page_size=5, page_token=token), metadata=ANALYST)
        found += list(page.changes)
        token = page.next_page_token
        if not token:
            return found


# --- preview ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "where"), [
    ('aum >= 500000.0 && age < 35', "aum >= 500000 AND age_years < 35"),
    ('"PAYROLL" in product_categories && customer_type == "CUSTOMER_TYPE_INDIVIDUAL"',
     "'PAYROLL' = ANY(product_categories) AND customer_type = 1"),
    ('(!has(age) || age >= 60) && "EMAIL" in marketing_channels',
     "(age_years IS NULL OR age_years >= 60) AND 'EMAIL' = ANY(marketing_channels)"),
])
async def test_preview_counts_what_hand_written_sql_counts(segments, segment_service, rule, where) -> None:
    branch_id = branch()
    await seed(segment_service, customers(branch_id))
    expected = await sql_ids(segment_service, f"branch_id = :b AND {where}", b=branch_id)
    response = await segments.PreviewSegment(pb.PreviewSegmentRequest(
        rule=f'branch_id == "{branch_id}" && ({rule})', sample_size=5), metadata=MARKETER)
    assert expected, "the population makes the rule select someone"
    assert response.count == len(expected)
    samples = {s.customer.removeprefix("customers/") for s in response.samples}
    assert len(samples) == min(5, len(expected)) and samples <= expected
    assert response.total_customers >= 40 - 3
    assert response.features_as_of.ToDatetime(tzinfo=UTC) >= datetime(2026, 12, 1, tzinfo=UTC)


async def test_preview_of_a_saved_segment_reads_its_rule(segments, segment_service) -> None:
    branch_id = branch()
    await seed(segment_service, customers(branch_id))
    saved = await create_segment(segments, f'branch_id == "{branch_id}" && aum >= 100000.0')
    expected = await sql_ids(segment_service, "branch_id = :b AND aum >= 100000", b=branch_id)
    response = await segments.PreviewSegment(pb.PreviewSegmentRequest(segment=saved.name, sample_size=0),
                                             metadata=MARKETER)
    assert response.count == len(expected) and len(response.samples) == min(10, len(expected))


@pytest.mark.parametrize("rule", [
    "aum >= 1000.0 &&\n  age > 30.0",
    "product_categories.exists(c, c == 'FUND')",
    "amu > 1.0",
])
async def test_preview_of_a_bad_rule_is_invalid_argument_with_position_and_reason(segments, rule) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.PreviewSegment(pb.PreviewSegmentRequest(rule=rule), metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    description = field_violations(error.value)["rule"]
    assert "line " in description and ", column " in description and "(" in description


async def test_preview_refuses_a_bad_sample_size_and_an_unknown_segment(segments) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await segments.PreviewSegment(pb.PreviewSegmentRequest(rule="aum > 1.0", sample_size=51), metadata=MARKETER)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sample_size" in field_violations(bad.value)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await segments.PreviewSegment(pb.PreviewSegmentRequest(segment="segments/no-such-segment"), metadata=MARKETER)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("payload", [
    "x' OR '1'='1",
    "'; DELETE FROM customer_feature; --",
    '\\"); DROP TABLE segment_member; --',
])
async def test_an_injection_attempt_in_a_string_literal_is_just_a_string(segments, segment_service,
                                                                         payload) -> None:
    branch_id = branch()
    await seed(segment_service, customers(branch_id))
    literal = payload.replace("\\", "\\\\").replace('"', '\\"')
    before = await row_counts(segment_service, "customer_feature", "segment_member")
    response = await segments.PreviewSegment(pb.PreviewSegmentRequest(
        rule=f'branch_id == "{branch_id}" && (branch_id == "{literal}" || nationality == "{literal}")'),
        metadata=MARKETER)
    assert response.count == 0
    assert await row_counts(segment_service, "customer_feature", "segment_member") == before


# --- materialise and membership ---------------------------------------------------------------


async def test_materialising_twice_records_who_entered_and_who_left(segments, segment_service) -> None:
    branch_id = branch()
    population = customers(branch_id)
    await seed(segment_service, population)
    saved = await create_segment(segments, f'branch_id == "{branch_id}" && aum >= 100000.0')
    where = "branch_id = :b AND aum >= 100000"
    first_members = await sql_ids(segment_service, where, b=branch_id)

    first = await materialise(segments, saved.name)
    assert first.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    result = segment_pb2.MaterialiseSegmentResult()
    assert first.response.Unpack(result)
    assert (result.member_count, result.entered_count, result.left_count) == (len(first_members),
                                                                               len(first_members), 0)
    assert {m.customer.removeprefix("customers/") for m in await all_members(segments, saved.name)} == first_members

    # One member's assets fall, one outsider's rise, one member is removed in profile.
    leaver, removed = sorted(first_members)[:2]
    joiner = sorted(c["customer_id"] for c in population if c["customer_id"] not in first_members
                    and not c["removed"])[0]
    await change(segment_service, leaver, aum=1)
    await change(segment_service, joiner, aum=9_000_000)
    await change(segment_service, removed, removed=True)

    second = await materialise(segments, saved.name)
    assert second.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    assert second.response.Unpack(result)
    assert (result.entered_count, result.left_count) == (1, 2)
    members = {m.customer.removeprefix("customers/") for m in await all_members(segments, saved.name)}
    assert members == (first_members - {leaver, removed}) | {joiner}

    changes = await all_changes(segments, saved.name)
    assert len(changes) == len(first_members) + 3
    newest = [c for c in changes if c.operation == second.name]
    assert changes[:3] == newest  # newest first
    assert {(c.customer, c.kind) for c in newest} == {
        (f"customers/{joiner}", segment_pb2.MEMBERSHIP_CHANGE_KIND_ENTERED),
        (f"customers/{leaver}", segment_pb2.MEMBERSHIP_CHANGE_KIND_LEFT),
        (f"customers/{removed}", segment_pb2.MEMBERSHIP_CHANGE_KIND_LEFT)}
    assert all(c.cause == segment_pb2.MEMBERSHIP_CHANGE_CAUSE_MATERIALISATION and c.rule_version == 1
               for c in changes)
    left_only = await segments.ListMembershipChanges(pb.ListMembershipChangesRequest(
        parent="segments/-", customer=f"customers/{leaver}", kind=segment_pb2.MEMBERSHIP_CHANGE_KIND_LEFT),
        metadata=ANALYST)
    assert [c.operation for c in left_only.changes] == [second.name]

    stored = (await segments.GetSegment(pb.GetSegmentRequest(name=saved.name), metadata=ANALYST)).segment
    assert stored.member_count == len(members) and stored.last_materialise_operation == second.name
    assert stored.etag == saved.etag  # membership is not the definition


async def test_members_page_in_customer_order_with_a_total(segments, segment_service) -> None:
    branch_id = branch()
    await seed(segment_service, customers(branch_id))
    saved = await create_segment(segments, f'branch_id == "{branch_id}"')
    await materialise(segments, saved.name)
    first = await segments.ListSegmentMembers(pb.ListSegmentMembersRequest(parent=saved.name, page_size=4),
                                              metadata=MARKETER)
    members = await all_members(segments, saved.name, page_size=4)
    ids = [m.customer for m in members]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == first.total_size == 40 - 3
    assert members[0].name == f"{saved.name}/members/{members[0].customer.removeprefix('customers/')}"


async def test_materialising_an_unknown_or_deleted_segment_is_not_found_and_starts_nothing(
    segments, segment_service,
) -> None:
    saved = await create_segment(segments, "aum > 1.0")
    await segments.DeleteSegment(pb.DeleteSegmentRequest(name=saved.name), metadata=ANALYST)
    before = await row_counts(segment_service, "operation", "segment_member", "membership_change")
    for name in ("segments/never-was", saved.name):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await segments.MaterialiseSegment(pb.MaterialiseSegmentRequest(name=name), metadata=ANALYST)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await segments.ListSegmentMembers(pb.ListSegmentMembersRequest(parent=saved.name), metadata=MARKETER)
    assert listing.value.code() == grpc.StatusCode.NOT_FOUND
    assert await row_counts(segment_service, "operation", "segment_member", "membership_change") == before


async def test_a_bad_rule_on_create_changes_nothing(segments, segment_service) -> None:
    before = await row_counts(segment_service, "segment", "operation", "segment_member")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create_segment(segments, "age > '30'")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await row_counts(segment_service, "segment", "operation", "segment_member") == before


async def test_membership_changes_of_every_segment_need_a_customer(segments) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.ListMembershipChanges(pb.ListMembershipChangesRequest(parent="segments/-"), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "customer" in field_violations(error.value)


async def test_operations_are_listed_and_watched_to_their_end(segments, segment_service) -> None:
    saved = await create_segment(segments, f'branch_id == "{branch()}"')
    done = await materialise(segments, saved.name)
    listed = await segments.ListOperations(pb.ListOperationsRequest(kind="segment.materialise"), metadata=ANALYST)
    assert done.name in {op.name for op in listed.operations}
    watched = [r.operation async for r in segments.WatchOperation(pb.WatchOperationRequest(name=done.name),
                                                                  metadata=ANALYST)]
    assert watched[-1].state == operation_pb2.OPERATION_STATE_SUCCEEDED


async def test_a_sample_of_a_large_selection_is_drawn_from_all_of_it(segments, segment_service) -> None:
    """Far more matches than the sample needs: the sample reads a Bernoulli share of the rows,
    and still draws from every matching customer, not the first ones found."""
    branch_id = branch()
    population = customers(branch_id, count=120)
    for row in population:
        row["removed"] = False
    await seed(segment_service, population)
    seen: set[str] = set()
    for _ in range(25):
        response = await segments.PreviewSegment(pb.PreviewSegmentRequest(
            rule=f'branch_id == "{branch_id}"', sample_size=2), metadata=MARKETER)
        assert response.count == 120 and len(response.samples) == 2
        drawn = {s.customer.removeprefix("customers/") for s in response.samples}
        assert len(drawn) == 2 and all(c.startswith(branch_id) for c in drawn)
        seen |= drawn
    # 50 draws from 120: a sample stuck on some rows would repeat them.
    assert len(seen) > 25


async def test_a_materialisation_publishes_each_entry_and_exit_on_segments_feed(segments, segment_service) -> None:
    """Campaign follows batch segments through these events, as it follows real-time ones."""
    branch_id = branch()
    population = customers(branch_id, count=12)
    await seed(segment_service, population)
    saved = await create_segment(segments, f'branch_id == "{branch_id}" && aum >= 100000.0')
    first_members = await sql_ids(segment_service, "branch_id = :b AND aum >= 100000", b=branch_id)
    assert first_members
    first = await materialise(segments, saved.name)
    leaver = sorted(first_members)[0]
    await change(segment_service, leaver, aum=1)
    second = await materialise(segments, saved.name)

    _, runtime = segment_service
    async with runtime.db.unit_of_work(read_only=True) as uow:
        rows = (await uow.execute(sa.text(
            "SELECT resource_type, resource_name, payload FROM outbox_event WHERE resource_name LIKE :prefix"
            " ORDER BY xid, cursor"), {"prefix": f"{saved.name}/members/%"})).all()
    published = []
    for row in rows:
        assert row.resource_type == "crm.segment.v1.SegmentMember"
        packed = any_pb2.Any.FromString(row.payload)
        event = segment_pb2.MembershipChange()
        assert packed.Unpack(event)
        assert row.resource_name == f"{saved.name}/members/{event.customer.removeprefix('customers/')}"
        published.append((event.customer.removeprefix("customers/"), event.kind, event.operation))
    entered, left = segment_pb2.MEMBERSHIP_CHANGE_KIND_ENTERED, segment_pb2.MEMBERSHIP_CHANGE_KIND_LEFT
    assert sorted(published) == sorted([(c, entered, first.name) for c in first_members]
                                       + [(leaver, left, second.name)])
