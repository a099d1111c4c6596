"""Feedback test fixtures: one migrated database and one in-process server per test session."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import pytest

from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2_grpc
from crm_feedback.app import SPEC
from crmkit.testing import service_fixtures, with_overrides

KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()
FEEDBACK_SETTINGS = {
    "encryption_keys": f"k1:{KEY_A},k2:{KEY_B}",
    "active_key_id": "k1",
    "feed_poll_seconds": 0.05,
    # Tests drive the SLA clock worker themselves (test_sla_clocks.py), on a database of their own.
    "sla_clock_seconds": 0,
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
