"""A risk server follows a live feedback peer's change feed: a complaint filed there is counted in
the customer's credit inputs, a deletion keeps it counted as filed (a tombstone an older event
cannot undo), and the follower's connection shows in the health details."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.type import date_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.feedback.v1 import complaint_pb2, feedback_service_pb2, feedback_service_pb2_grpc
from crm.profile.v1 import customer_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import risk_service_pb2_grpc
from crm_risk.app import SPEC
from crm_risk.customers import rules
from crm_risk.customers.repository import CustomerRepository
from crm_risk.customers.service import CustomerReadModel
from crm_risk.reports.tables import complaint
from crmkit.auth import Role
from crmkit.peer_payloads import COMPLAINT_TYPE
from crmkit.testing import bearer, eventually, free_port, running_service

OFFICER = bearer(Role.RISK_OFFICER, subject="ro-complaints")
RISK = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_RISK, justification="credit review")


class FeedbackPeer(feedback_service_pb2_grpc.FeedbackServiceServicer):
    """Feedback's WatchChanges serving the events a test queues, after the cursor asked for."""

    def __init__(self) -> None:
        self.events: list[change_event_pb2.ChangeEvent] = []
        self.requests: list[feedback_service_pb2.WatchChangesRequest] = []

    async def WatchChanges(self, request: feedback_service_pb2.WatchChangesRequest, context: Any
                           ) -> AsyncIterator[feedback_service_pb2.WatchChangesResponse]:
        self.requests.append(request)
        sent = 0
        if request.after_cursor:
            sent = next(i + 1 for i, e in enumerate(self.events) if e.cursor == request.after_cursor)
        while True:
            if sent < len(self.events):
                yield feedback_service_pb2.WatchChangesResponse(events=self.events[sent:])
                sent = len(self.events)
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serving(peer: FeedbackPeer, port: int) -> AsyncIterator[None]:
    server = grpc.aio.server()
    feedback_service_pb2_grpc.add_FeedbackServiceServicer_to_server(peer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield
    finally:
        await server.stop(grace=None)


def event(seq: int, resource_name: str, payload: Any, resource_type: str, change_type: int
          ) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    if payload is not None:
        packed.Pack(payload)
    occurred = timestamp_pb2.Timestamp()
    occurred.FromDatetime(datetime.now(UTC))
    return change_event_pb2.ChangeEvent(cursor=f"{seq}.{seq}", event_id=str(uuid.uuid4()), resource_type=resource_type,
                                        resource_name=resource_name, change_type=change_type, occurred_at=occurred,
                                        payload=packed, actor="system:test")


async def test_a_risk_server_counts_the_complaints_feedback_publishes(risk_database) -> None:
    peer, port = FeedbackPeer(), free_port()
    cid = f"cmp-{uuid.uuid4().hex[:8]}"
    name = f"customers/{cid}"
    async with serving(peer, port), running_service(
            SPEC, database_url=risk_database, profile_target="", feedback_target=f"127.0.0.1:{port}",
            alert_escalation_poll_seconds=0, feed_poll_seconds=0.05) as (channel, runtime):
        risk = risk_service_pb2_grpc.RiskServiceStub(channel)
        model = CustomerReadModel(repository=CustomerRepository(), attributes=rules.AttributeNames())
        async with runtime.db.unit_of_work() as uow:
            record = customer_pb2.Customer(name=name, customer_id=cid, state=customer_pb2.CUSTOMER_STATE_ACTIVE,
                                           kyc_status=customer_pb2.KYC_STATUS_VERIFIED,
                                           onboarded_on=date_pb2.Date(year=2020, month=1, day=1))
            assert await model.apply(uow, event(9_000_001, name, record, "crm.profile.v1.Customer",
                                                change_event_pb2.CHANGE_TYPE_UPDATED))

        async def complaints() -> int:
            request = pb.GetCreditRatingInputsRequest(customer=name, audit=RISK)
            return (await risk.GetCreditRatingInputs(request, metadata=OFFICER)).inputs.complaints_12m

        assert await complaints() == 0
        filed = complaint_pb2.Complaint(name=f"complaints/{cid}-1", customer=name,
                                        status=complaint_pb2.COMPLAINT_STATUS_OPEN)
        filed.create_time.FromDatetime(datetime.now(UTC) - timedelta(days=2))
        peer.events.append(event(1, filed.name, filed, COMPLAINT_TYPE, change_event_pb2.CHANGE_TYPE_CREATED))
        assert await eventually(complaints) == 1
        peer.events.append(event(2, filed.name, None, COMPLAINT_TYPE, change_event_pb2.CHANGE_TYPE_DELETED))
        old = complaint_pb2.Complaint(name=f"complaints/{cid}-2", customer=name,
                                      status=complaint_pb2.COMPLAINT_STATUS_CLOSED)
        old.create_time.FromDatetime(datetime.now(UTC) - timedelta(days=400))
        peer.events.append(event(3, old.name, old, COMPLAINT_TYPE, change_event_pb2.CHANGE_TYPE_CREATED))

        async def stored() -> list[tuple[str, bool]]:
            async with runtime.db.unit_of_work(read_only=True) as uow:
                rows = await uow.execute(sa.select(complaint.c.complaint_id, complaint.c.open)
                                         .where(complaint.c.customer_id == cid).order_by(complaint.c.complaint_id))
                return [tuple(r) for r in rows.all()]

        assert await eventually(stored, until=lambda rows: len(rows) == 2) == [(f"{cid}-1", False), (f"{cid}-2", False)]
        assert await complaints() == 1, "a complaint filed 400 days ago is not in the last 12 months"
        details = await runtime.collect_health_details()
        assert details["feedback_feed_connected"] is True
        assert list(peer.requests[0].resource_types) == [COMPLAINT_TYPE]
