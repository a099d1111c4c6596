"""Complaint and churn-score features from feedback's and risk's feeds (features.peer_features):
applied once in feed order and counted by the catalogue. (Feedback's real feed reaching a rule and
a real-time segment is tested across services, in tests/test_segment_peer_feeds.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import change_event_pb2 as E
from crm.feedback.v1 import complaint_pb2
from crm.risk.v1 import scoring_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.features import peer_features
from crm_segment.features.tables import customer_feature
from crmkit.auth import Role
from crmkit.peer_payloads import CHURN_SCORE_TYPE, COMPLAINT_TYPE
from crmkit.testing import bearer

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
NOW = datetime.now(UTC)


def event(resource_type: str, resource_name: str, change_type: int, payload: Message | None, seq: int
          ) -> E.ChangeEvent:
    packed = any_pb2.Any()
    if payload is not None:
        packed.Pack(payload)
    occurred = Timestamp()
    occurred.FromDatetime(NOW)
    return E.ChangeEvent(event_id=str(uuid.uuid4()), resource_type=resource_type, resource_name=resource_name,
                         change_type=change_type, payload=packed, cursor=f"7.{seq}", occurred_at=occurred)


def complaint(customer_id: str, status: int, filed: datetime = NOW) -> complaint_pb2.Complaint:
    created = Timestamp()
    created.FromDatetime(filed)
    return complaint_pb2.Complaint(customer=f"customers/{customer_id}", status=status, create_time=created)


def churn(probability: float, band: int) -> scoring_pb2.ChurnScore:
    return scoring_pb2.ChurnScore(probability=probability, risk_band=band)


async def seed_customer(segment_service: tuple[Any, Any], branch_id: str) -> str:
    customer_id = f"C-{uuid.uuid4().hex[:12]}"
    _, runtime = segment_service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.insert(customer_feature).values(
            customer_id=customer_id, branch_id=branch_id, features_as_of=NOW, aum=1000))
    return customer_id


async def count(segments: Any, rule: str) -> int:
    return (await segments.PreviewSegment(pb.PreviewSegmentRequest(rule=rule), metadata=ANALYST)).count


async def test_complaints_and_scores_apply_once_in_feed_order_and_rules_count_them(segment_service: Any,
                                                                                  segments: Any) -> None:
    branch = f"B-peer-{uuid.uuid4().hex[:6]}"
    customer = await seed_customer(segment_service, branch)
    _, runtime = segment_service
    OPEN, RESOLVED = complaint_pb2.COMPLAINT_STATUS_OPEN, complaint_pb2.COMPLAINT_STATUS_RESOLVED
    step = complaint_pb2.ComplaintStepEvent(complaint=complaint(customer, RESOLVED))
    old = complaint(customer, RESOLVED, filed=NOW - timedelta(days=200))
    async with runtime.db.unit_of_work() as uow:
        apply = peer_features.apply_complaint
        assert await apply(uow, event(COMPLAINT_TYPE, "complaints/K1", E.CHANGE_TYPE_CREATED,
                                      complaint(customer, OPEN), 10)) == customer
        assert await apply(uow, event(COMPLAINT_TYPE, "complaints/K2", E.CHANGE_TYPE_CREATED,
                                      complaint(customer, OPEN), 11)) == customer
        assert await apply(uow, event(COMPLAINT_TYPE, "complaints/K2", E.CHANGE_TYPE_EVENT, step, 12)) == customer
        # A replay of K2's filing (an older position) cannot reopen it.
        assert await apply(uow, event(COMPLAINT_TYPE, "complaints/K2", E.CHANGE_TYPE_CREATED,
                                      complaint(customer, OPEN), 11)) is None
        assert await apply(uow, event(COMPLAINT_TYPE, "complaints/K3", E.CHANGE_TYPE_CREATED, old, 13)) == customer
        # An SLA breach event carries no complaint: nothing to record.
        assert await apply(uow, event(COMPLAINT_TYPE, "complaints/K1", E.CHANGE_TYPE_EVENT, None, 14)) is None
        score = peer_features.apply_churn_score
        assert await score(uow, event(CHURN_SCORE_TYPE, f"customers/{customer}", E.CHANGE_TYPE_UPDATED,
                                      churn(0.2, scoring_pb2.RISK_BAND_LOW), 20)) == customer
        assert await score(uow, event(CHURN_SCORE_TYPE, f"customers/{customer}", E.CHANGE_TYPE_UPDATED,
                                      churn(0.81, scoring_pb2.RISK_BAND_HIGH), 21)) == customer
        assert await score(uow, event(CHURN_SCORE_TYPE, f"customers/{customer}", E.CHANGE_TYPE_UPDATED,
                                      churn(0.2, scoring_pb2.RISK_BAND_LOW), 20)) is None

    at = f'branch_id == "{branch}"'
    assert await count(segments, f"{at} && open_complaint_count == 1") == 1
    assert await count(segments, f"{at} && complaint_count_90d == 2") == 1  # K3 was filed 200 days ago
    assert await count(segments, f'{at} && churn_risk_band == "RISK_BAND_HIGH" && churn_probability > 0.8') == 1

    async with runtime.db.unit_of_work() as uow:  # K1 withdrawn: deleted in feedback
        assert await peer_features.apply_complaint(
            uow, event(COMPLAINT_TYPE, "complaints/K1", E.CHANGE_TYPE_DELETED, None, 15)) == customer
    assert await count(segments, f"{at} && open_complaint_count == 0") == 1
