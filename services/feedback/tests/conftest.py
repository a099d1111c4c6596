"""Feedback test fixtures: one migrated database and one in-process server per test session."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2_grpc
from crm_feedback.app import SPEC
from crmkit.testing import DatabaseFactory, migrated_database, running_service

KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()
FEEDBACK_SETTINGS = {
    "encryption_keys": f"k1:{KEY_A},k2:{KEY_B}",
    "active_key_id": "k1",
    "feed_poll_seconds": 0.05,
}


@pytest.fixture(scope="session")
async def feedback_database(database_factory: DatabaseFactory) -> str:
    return await migrated_database(database_factory, SPEC)


@pytest.fixture(scope="session")
async def feedback_service(feedback_database: str) -> AsyncIterator[tuple[Any, Any]]:
    async with running_service(SPEC, database_url=feedback_database, **FEEDBACK_SETTINGS) as (channel, runtime):
        yield channel, runtime


@pytest.fixture
def feedback(feedback_service: tuple[Any, Any]) -> feedback_service_pb2_grpc.FeedbackServiceStub:
    channel, _ = feedback_service
    return feedback_service_pb2_grpc.FeedbackServiceStub(channel)


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
    for field, value in overrides.items():
        if hasattr(value, "CopyFrom"):
            getattr(complaint, field).CopyFrom(value)
        elif isinstance(value, list):
            del getattr(complaint, field)[:]
            getattr(complaint, field).extend(value)
        else:
            setattr(complaint, field, value)
    return complaint


@pytest.fixture
def new_complaint() -> Any:
    """A valid filing for a fresh customer; keyword arguments override fields."""
    return make_complaint
