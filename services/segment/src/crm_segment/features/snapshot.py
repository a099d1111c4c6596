"""Profile's current state read through its List and Get RPCs, as the change events the read model
already knows how to apply (`crmkit.peer_feed.PeerFeedFollower.rebuild`).

Each event carries the feed's start position (cursor ""), so every event profile still retains,
replayed after the snapshot, is newer and wins. Customers come a page at a time with their
features, consents and contact preferences (one call each: a rebuild is rare, and profile offers
no bulk read of these); holdings come from `customers/-`, a page at a time. Every read names its
purpose (ANALYTICS-like work is MARKETING here: the model feeds segmentation) for profile's audit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
from google.protobuf.message import Message

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.profile.v1 import consent_pb2, features_pb2, holding_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_segment.features import rules

ChangeEvent = change_event_pb2.ChangeEvent
PAGE_SIZE = 500
# Calls per customer page made at once (features, consents, preferences of each customer).
CONCURRENCY = 16
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_MARKETING,
                               justification="segment feature read model rebuild after CURSOR_EXPIRED")
_ACTOR = "service:segment"


def _event(resource_type: str, resource_name: str, payload: Message, *, at: datetime) -> ChangeEvent:
    event = ChangeEvent(cursor="", event_id=str(uuid.uuid4()), resource_type=resource_type,
                        resource_name=resource_name, change_type=change_event_pb2.CHANGE_TYPE_UPDATED, actor=_ACTOR)
    event.occurred_at.FromDatetime(at)
    event.payload.Pack(payload)
    return event


def consent_record(customer_name: str, state: consent_pb2.ConsentState) -> consent_pb2.ConsentRecord:
    """A consent's current state as the record the feed would carry (expired reads as its opt-in
    with the expiry it had, which the model already treats as not in force)."""
    decision = (consent_pb2.CONSENT_DECISION_OPT_IN if state.status in (consent_pb2.CONSENT_STATUS_OPTED_IN,
                                                                        consent_pb2.CONSENT_STATUS_EXPIRED)
                else consent_pb2.CONSENT_DECISION_OPT_OUT)
    record = consent_pb2.ConsentRecord(name=state.record or customer_name, purpose=state.purpose,
                                       channel=state.channel, decision=decision)
    if state.HasField("effective_time"):
        record.evidence.effective_time.CopyFrom(state.effective_time)
        record.record_time.CopyFrom(state.effective_time)
    if state.HasField("expire_time"):
        record.expire_time.CopyFrom(state.expire_time)
    return record


async def profile_snapshot(channel: grpc.aio.Channel, *,
                           page_size: int = PAGE_SIZE) -> AsyncIterator[list[ChangeEvent]]:
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    limit = asyncio.Semaphore(CONCURRENCY)
    now = datetime.now(UTC)

    async def around(customer_name: str) -> list[ChangeEvent]:
        async with limit:
            features, consents, preferences = await asyncio.gather(
                _features(stub, customer_name), _all_consents(stub, customer_name),
                stub.GetContactPreferences(consent_pb2.GetContactPreferencesRequest(
                    name=f"{customer_name}/contactPreferences", audit=AUDIT)))
        events = [_event(rules.PREFERENCES_TYPE, f"{customer_name}/contactPreferences",
                         preferences.contact_preferences, at=now)]
        if features is not None:
            events.append(_event(rules.FEATURES_TYPE, f"{customer_name}/features", features, at=now))
        events += [_event(rules.CONSENT_TYPE, f"{customer_name}/consents", consent_record(customer_name, state),
                          at=now) for state in consents if state.purpose == rules.MARKETING]
        return events

    token = ""
    while True:
        page = await stub.ListCustomers(profile_service_pb2.ListCustomersRequest(
            page_size=page_size, page_token=token, audit=AUDIT))
        batch = [_event(rules.CUSTOMER_TYPE, c.name, c, at=now) for c in page.customers]
        for events in await asyncio.gather(*(around(c.name) for c in page.customers)):
            batch += events
        yield batch
        token = page.next_page_token
        if not token:
            break
    while True:
        holdings = await stub.ListHoldings(holding_pb2.ListHoldingsRequest(
            parent="customers/-", page_size=page_size, page_token=token, audit=AUDIT))
        yield [_event(rules.HOLDING_TYPE, h.name, h, at=now) for h in holdings.holdings]
        token = holdings.next_page_token
        if not token:
            break


async def _all_consents(stub: profile_service_pb2_grpc.ProfileServiceStub,
                        customer_name: str) -> list[consent_pb2.ConsentState]:
    states: list[consent_pb2.ConsentState] = []
    token = ""
    while True:
        page = await stub.ListConsents(consent_pb2.ListConsentsRequest(
            parent=customer_name, page_token=token, page_size=1000, audit=AUDIT))
        states += page.states
        token = page.next_page_token
        if not token:
            return states



async def _features(stub: profile_service_pb2_grpc.ProfileServiceStub,
                    customer_name: str) -> features_pb2.CustomerFeatures | None:
    """The customer's derived features; None when profile has not computed them yet."""
    try:
        response = await stub.GetCustomerFeatures(features_pb2.GetCustomerFeaturesRequest(
            name=f"{customer_name}/features", audit=AUDIT))
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return response.features
