"""Segment test fixtures: one migrated database and one in-process server per test session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm.segment.v1 import segment_pb2, segment_service_pb2_grpc
from crm_segment.app import SPEC
from crmkit.testing import DatabaseFactory, migrated_database, running_service


@pytest.fixture(scope="session")
async def segment_database(database_factory: DatabaseFactory) -> str:
    return await migrated_database(database_factory, SPEC)


@pytest.fixture(scope="session")
async def segment_service(segment_database: str) -> AsyncIterator[tuple[Any, Any]]:
    async with running_service(SPEC, database_url=segment_database, feed_poll_seconds=0.05) as (channel, runtime):
        yield channel, runtime


@pytest.fixture
def segments(segment_service: tuple[Any, Any]) -> segment_service_pb2_grpc.SegmentServiceStub:
    channel, _ = segment_service
    return segment_service_pb2_grpc.SegmentServiceStub(channel)


def make_segment(**overrides: object) -> segment_pb2.Segment:
    suffix = uuid.uuid4().hex[:10]
    segment = segment_pb2.Segment(
        segment_id=f"young-payroll-{suffix}",
        display_name=f"Young professionals with payroll {suffix}",
        description="Under-35s with payroll and growing assets, for the wealth starter campaign.",
        rule='aum >= 500000.0 && age < 35 && "PAYROLL" in product_categories',
        evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_BATCH,
    )
    for field, value in overrides.items():
        if hasattr(value, "CopyFrom"):
            getattr(segment, field).CopyFrom(value)
        else:
            setattr(segment, field, value)
    return segment


@pytest.fixture
def new_segment() -> Any:
    """A valid segment with a fresh id and name; keyword arguments override fields."""
    return make_segment


@pytest.fixture
def count_rows(segment_service: tuple[Any, Any]) -> Any:
    """Rows in a table of the segment database, to show that a refused call wrote nothing."""
    import sqlalchemy as sa

    _, runtime = segment_service

    async def count(table: str) -> int:
        async with runtime.db.engine.connect() as connection:
            return int((await connection.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608

    return count


@pytest.fixture
def latest_cursor(segment_service: tuple[Any, Any]) -> Any:
    """The change feed's newest cursor now ("0" when empty): watch after it to see only new events."""
    import sqlalchemy as sa

    _, runtime = segment_service

    async def cursor() -> str:
        async with runtime.db.engine.connect() as connection:
            latest = await connection.execute(sa.text('SELECT coalesce(max("cursor"), 0) FROM outbox_event'))
            value = latest.scalar_one()
        return str(value)

    return cursor
