"""Risk's customer read model from profile's change feed: events built as profile publishes them
apply once (a replay or an older event changes nothing), the facts suitability decides on come
out of them (risk tolerance, KYC, a never-overstated age, the assessment's expiry and the
vulnerability flag from custom attributes), and a live follower of a profile peer fills the model
behind a real risk server, with its lag in the health details."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.type import date_pb2

from crm.common.v1 import change_event_pb2
from crm.common.v1 import product_risk_pb2 as pr
from crm.profile.v1 import attribute_pb2, customer_pb2, features_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import risk_service_pb2_grpc
from crm.risk.v1 import suitability_pb2 as su
from crm_risk.app import SPEC
from crm_risk.customers import rules
from crm_risk.customers.repository import CustomerRepository
from crm_risk.customers.service import CustomerReadModel
from crmkit.auth import Role
from crmkit.testing import bearer, eventually, free_port, running_service

UPDATED, DELETED = change_event_pb2.CHANGE_TYPE_UPDATED, change_event_pb2.CHANGE_TYPE_DELETED
TODAY = datetime.now(UTC).date()
CAMPAIGN = bearer(Role.SERVICE, subject="svc-campaign")


class Feed:
    """Profile's feed as a test writes it: cursors in feed order, payloads packed as profile's outbox does."""

    def __init__(self, start: int = 1000) -> None:
        self.seq = start

    def event(self, resource_name: str, payload: Message | None, *, change_type: int = UPDATED,
              resource_type: str = "") -> change_event_pb2.ChangeEvent:
        self.seq += 1
        packed = any_pb2.Any()
        if payload is not None:
            packed.Pack(payload)
        occurred = timestamp_pb2.Timestamp()
        occurred.FromDatetime(datetime.now(UTC) - timedelta(seconds=5))
        return change_event_pb2.ChangeEvent(
            cursor=f"{self.seq}.{self.seq}", event_id=str(uuid.uuid4()),
            resource_type=resource_type or (payload.DESCRIPTOR.full_name if payload else ""),
            resource_name=resource_name, change_type=change_type, occurred_at=occurred, payload=packed,
            actor="system:test")


def customer(customer_id: str, **fields: Any) -> customer_pb2.Customer:
    message = customer_pb2.Customer(
        name=f"customers/{customer_id}", customer_id=customer_id, birth_date=date_pb2.Date(year=1980),
        kyc_status=customer_pb2.KYC_STATUS_VERIFIED, risk_tolerance=customer_pb2.RISK_TOLERANCE_BALANCED,
        relationship_manager_id="rm-7", branch_id="br-1", state=customer_pb2.CUSTOMER_STATE_ACTIVE)
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def features(customer_id: str, age: int) -> features_pb2.CustomerFeatures:
    message = features_pb2.CustomerFeatures(name=f"customers/{customer_id}/features",
                                            lifecycle=features_pb2.LifecycleInputs(age_years=age))
    message.compute_time.FromDatetime(datetime.now(UTC))
    return message


@pytest.fixture
def model() -> CustomerReadModel:
    return CustomerReadModel(repository=CustomerRepository(), attributes=rules.AttributeNames())


async def apply(runtime: Any, model: CustomerReadModel, *events: change_event_pb2.ChangeEvent) -> list[bool]:
    async with runtime.db.unit_of_work() as uow:
        return [await model.apply(uow, event) for event in events]


async def facts(runtime: Any, customer_id: str) -> Any:
    async with runtime.db.unit_of_work(read_only=True) as uow:
        found = await CustomerRepository().find(uow, [customer_id], today=TODAY)
    return found.get(customer_id)


@pytest.mark.parametrize(("kwargs", "age"), [
    (dict(age_years=17, age_on=date(2026, 6, 1), birth_year=2009), 17),
    (dict(age_years=17, age_on=date(2025, 12, 7), birth_year=2008), 18),
    (dict(age_years=None, age_on=None, birth_year=2008), 17),  # birth year only: the younger possible age
    (dict(age_years=None, age_on=None, birth_year=None), None),
])
def test_the_age_is_never_overstated(kwargs: dict[str, Any], age: int | None) -> None:
    assert rules.current_age(**kwargs, today=date(2026, 12, 7)) == age


async def test_events_apply_once_and_an_older_event_never_overwrites_a_newer_one(risk_service, model) -> None:
    _, runtime = risk_service
    cid = f"c-{uuid.uuid4().hex[:8]}"
    feed = Feed()
    older = feed.event(f"customers/{cid}", customer(cid, risk_tolerance=customer_pb2.RISK_TOLERANCE_CONSERVATIVE))
    newer = feed.event(f"customers/{cid}", customer(cid, risk_tolerance=customer_pb2.RISK_TOLERANCE_AGGRESSIVE))
    aged = feed.event(f"customers/{cid}/features", features(cid, 44))
    assert await apply(runtime, model, newer, aged) == [True, True]
    assert await apply(runtime, model, older, newer, aged) == [False, False, False]
    record = await facts(runtime, cid)
    assert record.facts.risk_tolerance == 5 and record.facts.age_years == 44
    assert record.relationship_manager_id == "rm-7"
    assert await apply(runtime, model, feed.event("customers/x/consents/c", None,
                                                  resource_type="crm.profile.v1.ConsentRecord")) == [False]


async def test_attributes_carry_the_assessment_expiry_and_vulnerability_and_a_deletion_forgets(
        risk_service, model) -> None:
    _, runtime = risk_service
    cid = f"c-{uuid.uuid4().hex[:8]}"
    feed = Feed()
    attributes = {"risk_assessment_expires_on": attribute_pb2.AttributeValue(
        date_value=date_pb2.Date(year=2027, month=3, day=31)),
        "vulnerable_customer": attribute_pb2.AttributeValue(bool_value=True)}
    message = customer(cid)
    for key, value in attributes.items():
        message.attributes[key].CopyFrom(value)
    await apply(runtime, model, feed.event(f"customers/{cid}", message))
    record = await facts(runtime, cid)
    assert record.facts.assessment_expiry == date(2027, 3, 31) and record.facts.vulnerable
    assert record.facts.age_years == TODAY.year - 1980 - 1, "birth year only until profile's features arrive"
    await apply(runtime, model, feed.event(f"customers/{cid}", None, change_type=DELETED,
                                           resource_type="crm.profile.v1.Customer"))
    assert await facts(runtime, cid) is None


class ProfilePeer(profile_service_pb2_grpc.ProfileServiceServicer):
    """Profile's WatchChanges serving the events a test queues, after the cursor asked for."""

    def __init__(self) -> None:
        self.events: list[change_event_pb2.ChangeEvent] = []
        self.requests: list[profile_service_pb2.WatchChangesRequest] = []

    async def WatchChanges(self, request: profile_service_pb2.WatchChangesRequest, context: Any
                           ) -> AsyncIterator[profile_service_pb2.WatchChangesResponse]:
        self.requests.append(request)
        sent = 0
        if request.after_cursor:
            sent = next(i + 1 for i, e in enumerate(self.events) if e.cursor == request.after_cursor)
        while True:
            if sent < len(self.events):
                yield profile_service_pb2.WatchChangesResponse(events=self.events[sent:])
                sent = len(self.events)
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serving(peer: ProfilePeer, port: int) -> AsyncIterator[None]:
    server = grpc.aio.server()
    profile_service_pb2_grpc.add_ProfileServiceServicer_to_server(peer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield
    finally:
        await server.stop(grace=None)


async def test_a_risk_server_follows_profile_and_checks_suitability_from_what_it_learnt(risk_database) -> None:
    peer, port = ProfilePeer(), free_port()
    cid = f"c-{uuid.uuid4().hex[:8]}"
    feed = Feed(start=5_000_000)
    async with serving(peer, port), running_service(
            SPEC, database_url=risk_database, profile_target=f"127.0.0.1:{port}", alert_escalation_poll_seconds=0,
            feed_poll_seconds=0.05) as (channel, runtime):
        risk = risk_service_pb2_grpc.RiskServiceStub(channel)
        request = pb.CheckSuitabilityRequest(customer=f"customers/{cid}", product_code="EQ-1",
                                             product_risk_level=pr.PRODUCT_RISK_LEVEL_R4)
        peer.events.append(feed.event(f"customers/{cid}",
                                      customer(cid, risk_tolerance=customer_pb2.RISK_TOLERANCE_BALANCED)))

        async def outcome() -> int:
            try:
                return (await risk.CheckSuitability(request, metadata=CAMPAIGN)).result.outcome
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
                return 0

        assert await eventually(outcome) == su.SUITABILITY_OUTCOME_DENY, "C3 may not buy R4"
        peer.events.append(feed.event(f"customers/{cid}",
                                      customer(cid, risk_tolerance=customer_pb2.RISK_TOLERANCE_AGGRESSIVE)))
        assert await eventually(outcome, until=lambda o: o == su.SUITABILITY_OUTCOME_ALLOW)
        assert peer.requests[0].resource_types == list(rules.FOLLOWED_TYPES)
        details = await runtime.collect_health_details()
        assert details["profile_feed_connected"] is True and details["customer_count"] >= 1
        assert 0 <= details["profile_feed_lag_seconds"] < 120 and not details["customer_model_needs_rebuild"]
