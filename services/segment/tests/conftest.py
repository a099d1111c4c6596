"""Segment test fixtures: one migrated database and one in-process server per test session."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from crm.segment.v1 import segment_pb2, segment_service_pb2_grpc
from crm_segment.app import SPEC
from crmkit.testing import row_counter, service_fixtures, with_overrides

segment_database, segment_service, segments = service_fixtures(
    SPEC, segment_service_pb2_grpc.SegmentServiceStub, stub="segments", feed_poll_seconds=0.05,
    operation_poll_seconds=0.05, profile_target="", feedback_target="", risk_target="", campaign_target="",
    classification_check_seconds=3600)


def make_segment(**overrides: object) -> segment_pb2.Segment:
    suffix = uuid.uuid4().hex[:10]
    segment = segment_pb2.Segment(
        segment_id=f"young-payroll-{suffix}",
        display_name=f"Young professionals with payroll {suffix}",
        description="Under-35s with payroll and growing assets, for the wealth starter campaign.",
        rule='aum >= 500000.0 && age < 35 && "PAYROLL" in product_categories',
        evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_BATCH,
    )
    return with_overrides(segment, overrides)


@pytest.fixture
def new_segment() -> Any:
    """A valid segment with a fresh id and name; keyword arguments override fields."""
    return make_segment


@pytest.fixture
def count_rows(segment_service: tuple[Any, Any]) -> Any:
    """Rows in a table of the segment database, to show that a refused call wrote nothing."""
    return row_counter(segment_service)


@pytest.fixture
def latest_cursor(segment_service: tuple[Any, Any]) -> Any:
    """The change feed's newest cursor now ("0" when empty): watch after it to see only new events."""
    _, runtime = segment_service

    async def cursor() -> str:
        async with runtime.db.engine.connect() as connection:
            latest = await connection.execute(sa.text('SELECT coalesce(max("cursor"), 0) FROM outbox_event'))
            value = latest.scalar_one()
        return str(value)

    return cursor
