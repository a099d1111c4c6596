"""Feedback test fixtures: one migrated database and one in-process server per test session."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2_grpc
from crm_feedback.app import SPEC, assemble
from crm_feedback.complaints.clock_worker import SlaClockWorker
from crmkit.clock import ManualClock
from crmkit.testing import DatabaseFactory, migrated_database, running_service, service_fixtures, with_overrides

KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()
FEEDBACK_SETTINGS = {
    "encryption_keys": f"k1:{KEY_A},k2:{KEY_B}",
    "active_key_id": "k1",
    "feed_poll_seconds": 0.05,
    # Tests drive the SLA clock worker themselves (test_sla_clocks.py), on a database of their own.
    "sla_clock_seconds": 0,
    # No customer read model: complaints for any customer are accepted (tests/test_feedback_customers.py checks it).
    "profile_target": "",
    "segment_target": "",
}

feedback_database, feedback_service, feedback = service_fixtures(
    SPEC, feedback_service_pb2_grpc.FeedbackServiceStub, stub="feedback", **FEEDBACK_SETTINGS)


def make_complaint(**overrides: object) -> complaint_pb2.Complaint:
    complaint = complaint_pb2.Complaint(
        customer=f"customers/C{uuid.uuid4().hex[:12].upper()}",
        channel=channel_pb2.CHANNEL_MOBILE_APP,
        category=classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES,
        subcategory="annual_fee",
        priority=complaint_pb2.COMPLAINT_PRIORITY_HIGH,
        description="The annual fee was charged twice on my card. 年费被重复收取。",
        branch_id="BJ-001",
        related_resources=["campaigns/spring-card-promo"],
    )
    return with_overrides(complaint, overrides)


@pytest.fixture
def new_complaint() -> Any:
    """A valid filing for a fresh customer; keyword arguments override fields."""
    return make_complaint


@dataclass
class Clocked:
    stub: Any
    clock: ManualClock
    runtime: Any
    service: tuple[Any, Any]

    def worker(self, *, batch_size: int = 100) -> SlaClockWorker:
        """A clock worker with collaborators of its own, as another replica has, on the same database
        (small batches make two workers interleave)."""
        return SlaClockWorker(db=self.runtime.db, complaints=assemble(self.runtime).complaints, clock=self.clock,
                              poll_seconds=0.02, batch_size=batch_size)


@pytest.fixture(scope="session")
async def clocked(database_factory: DatabaseFactory) -> AsyncIterator[Clocked]:
    """A second feedback service on a `ManualClock` and a database of its own (tests move its clock
    hours forward, which would breach every other test's complaints); its clock worker is off, tests
    run workers themselves. Tests on it use times relative to `clock()` and their own branches."""
    url = await migrated_database(database_factory, SPEC)
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    settings = {**FEEDBACK_SETTINGS, "sla_clock_seconds": 0}
    async with running_service(SPEC, database_url=url, clock=clock, **settings) as (channel, runtime):
        yield Clocked(feedback_service_pb2_grpc.FeedbackServiceStub(channel), clock, runtime, (channel, runtime))
