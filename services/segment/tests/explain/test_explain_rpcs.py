"""ExplainSegmentMembership through a real in-process server on PostgreSQL, customers seeded into
the read model directly, as profile's feed would leave them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.segment.v1 import segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.features.tables import customer_feature
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, field_violations

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-7")
CHANNEL_APP = bearer(Role.CHANNEL_APP, subject="app-1")
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
RULE = 'aum >= 500000.0 && (age < 35 && "PAYROLL" in product_categories)'
HELD, NOT_HELD, UNDEFINED = pb.CLAUSE_OUTCOME_HELD, pb.CLAUSE_OUTCOME_NOT_HELD, pb.CLAUSE_OUTCOME_UNDEFINED


async def seed(service: tuple[Any, Any], **values: Any) -> str:
    customer_id = f"C-{uuid.uuid4().hex[:12]}"
    _, runtime = service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.insert(customer_feature), [{
            "customer_id": customer_id, "branch_id": "B-explain", "features_as_of": AS_OF,
            "relationship_manager_id": "rm-7", **values}])
    return f"customers/{customer_id}"


async def create_segment(segments: Any, rule: str = RULE) -> str:
    suffix = uuid.uuid4().hex[:10]
    response = await segments.CreateSegment(pb.CreateSegmentRequest(segment=segment_pb2.Segment(
        segment_id=f"explain-{suffix}", display_name=f"Explain {suffix}", rule=rule)), metadata=ANALYST)
    return response.segment.name


async def explain(segments: Any, segment: str, customer: str, metadata: Any = ANALYST
                  ) -> pb.ExplainSegmentMembershipResponse:
    return await segments.ExplainSegmentMembership(
        pb.ExplainSegmentMembershipRequest(segment=segment, customer=customer), metadata=metadata)


def outcomes(response: pb.ExplainSegmentMembershipResponse) -> list[tuple[str, int, dict[str, str]]]:
    return [(c.text, c.held, dict(c.values)) for c in response.clauses]


async def test_a_member_has_every_clause_held(segment_service: Any, segments: Any) -> None:
    segment = await create_segment(segments)
    customer = await seed(segment_service, aum=800_000, age_years=29, product_categories=["PAYROLL", "SAVINGS"])

    response = await explain(segments, segment, customer)

    assert response.member
    # The parenthesised `&&` is flattened into the outer chain: three clauses, in source order.
    assert outcomes(response) == [
        ("aum >= 500000.0", HELD, {"aum": "800000.0"}),
        ("age < 35", HELD, {"age": "29"}),
        ('"PAYROLL" in product_categories', HELD, {"product_categories": "PAYROLL,SAVINGS"})]
    assert response.features_as_of.ToDatetime(tzinfo=UTC) == AS_OF


async def test_a_non_member_is_told_which_clause_failed(segment_service: Any, segments: Any) -> None:
    segment = await create_segment(segments)
    customer = await seed(segment_service, aum=800_000, age_years=52, product_categories=["PAYROLL"])

    response = await explain(segments, segment, customer, metadata=RM)

    assert not response.member
    assert [(text, held) for text, held, _ in outcomes(response)] == [
        ("aum >= 500000.0", HELD), ("age < 35", NOT_HELD), ('"PAYROLL" in product_categories', HELD)]
    assert dict(response.clauses[1].values) == {"age": "52"}


async def test_a_missing_value_is_undefined_not_false(segment_service: Any, segments: Any) -> None:
    segment = await create_segment(segments, rule="age < 35 || aum >= 500000.0")
    customer = await seed(segment_service, aum=100_000, age_years=None)

    response = await explain(segments, segment, customer)

    assert not response.member
    assert outcomes(response) == [("age < 35", UNDEFINED, {"age": ""}),
                                  ("aum >= 500000.0", NOT_HELD, {"aum": "100000.0"})]


async def test_unknown_segment_or_customer_is_not_found(segment_service: Any, segments: Any) -> None:
    segment = await create_segment(segments)
    customer = await seed(segment_service, aum=1)
    removed = await seed(segment_service, aum=1, removed=True)
    for name, who, reason in [("segments/no-such-segment", customer, "SEGMENT_NOT_FOUND"),
                              (segment, "customers/C-nobody", "CUSTOMER_NOT_FOUND"),
                              (segment, removed, "CUSTOMER_NOT_FOUND")]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await explain(segments, name, who)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(error.value).reason == reason


async def test_malformed_names_are_invalid_argument_naming_each_field(segments: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await explain(segments, "segment/x", "customers/a/b")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error.value)) == {"segment", "customer"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await explain(segments, "", "")
    assert set(field_violations(missing.value)) == {"segment", "customer"}


async def test_relationship_manager_sees_only_their_book_and_channel_apps_none(segment_service: Any,
                                                                               segments: Any) -> None:
    segment = await create_segment(segments)
    others = await seed(segment_service, aum=1, relationship_manager_id="rm-9")
    with pytest.raises(grpc.aio.AioRpcError) as outside:
        await explain(segments, segment, others, metadata=RM)
    assert outside.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as app:
        await explain(segments, segment, others, metadata=CHANNEL_APP)
    assert app.value.code() == grpc.StatusCode.PERMISSION_DENIED
