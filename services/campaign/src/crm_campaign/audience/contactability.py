"""Campaign follows profile's change feed into the `customer_contact` read model (crmkit.peer_feed):
marketing consent per channel (ConsentRecord events of purpose MARKETING, the latest decision
per channel wins), do-not-contact, the preferred channel and the time zone (ContactPreferences).
Each customer's relationship manager is not kept here but in the books (`book.follower`).

Reachability is not read from contact details yet: a channel the customer consented to is taken
as reachable, and a provider that cannot deliver fails the dispatch (e.g. `INVALID_PHONE`).
Consent expiry is not applied yet either.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.profile.v1 import consent_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_campaign.audience import peers
from crm_campaign.audience.read_models import customer_contact as t
from crm_campaign.campaigns.model import Channel
from crm_campaign.triggers import events as trigger_events
from crmkit.db import Database
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import ApplyEvent, PeerFeedFollower
from crmkit.settings import ServiceSettings

FEED = "profile"
CONSENT_TYPE = "crm.profile.v1.ConsentRecord"
PREFERENCES_TYPE = "crm.profile.v1.ContactPreferences"
# Profile's contact channels as campaign's channels (post has no campaign channel).
CHANNELS = {
    consent_pb2.CONTACT_CHANNEL_SMS: Channel.SMS, consent_pb2.CONTACT_CHANNEL_EMAIL: Channel.EMAIL,
    consent_pb2.CONTACT_CHANNEL_PHONE_CALL: Channel.CALL_CENTRE,
    consent_pb2.CONTACT_CHANNEL_MOBILE_APP: Channel.MOBILE_APP, consent_pb2.CONTACT_CHANNEL_WECHAT: Channel.WECHAT,
}


def _customer_id(resource_name: str) -> str:
    return resource_name.split("/")[1] if resource_name.startswith("customers/") else ""


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    customer_id = _customer_id(event.resource_name)
    if not customer_id:
        return False
    if event.resource_type == CONSENT_TYPE:
        record = consent_pb2.ConsentRecord()
        if not event.payload.Unpack(record) or record.purpose != consent_pb2.CONSENT_PURPOSE_MARKETING:
            return False
        channel = CHANNELS.get(record.channel)
        if channel is None:
            return False
        await _ensure(connection, customer_id)
        removed = sa.func.array_remove(t.c.consented_channels, int(channel))
        if record.decision == consent_pb2.CONSENT_DECISION_OPT_IN:
            others = sa.func.array_remove(t.c.reachable_channels, int(channel))
            changes = {"consented_channels": sa.func.array_append(removed, int(channel)),
                       "reachable_channels": sa.func.array_append(others, int(channel))}
        else:
            changes = {"consented_channels": removed}
        await connection.execute(sa.update(t).where(t.c.customer_id == customer_id).values(
            **changes, updated_at=sa.func.now()))
        return True
    if event.resource_type == PREFERENCES_TYPE:
        preferences = consent_pb2.ContactPreferences()
        if not event.payload.Unpack(preferences):
            return False
        preferred = next((CHANNELS[c] for c in preferences.preferred_channels if c in CHANNELS), 0)
        await _ensure(connection, customer_id)
        await connection.execute(sa.update(t).where(t.c.customer_id == customer_id).values(
            do_not_contact=preferences.do_not_contact, preferred_channel=int(preferred),
            time_zone=preferences.time_zone, updated_at=sa.func.now()))
        return True
    return False


async def _ensure(connection: AsyncConnection, customer_id: str) -> None:
    await connection.execute(pg.insert(t).values(customer_id=customer_id).on_conflict_do_nothing())


def follow_profile(*, db: Database, settings: ServiceSettings, target: str, max_backoff_seconds: float,
                   triggers: ApplyEvent | None = None) -> PeerFeedFollower:
    """`triggers` also sees every event (and the customer events and holdings it needs), in the same transaction."""
    types: tuple[str, ...] = (CONSENT_TYPE, PREFERENCES_TYPE)
    if triggers is not None:
        types += trigger_events.PROFILE_TYPES
    return peers.follow(name=FEED, target=target, stub=profile_service_pb2_grpc.ProfileServiceStub,
                        request_type=profile_service_pb2.WatchChangesRequest, resource_types=types,
                        apply=peers.together(apply, triggers), db=db, settings=settings,
                        max_backoff_seconds=max_backoff_seconds)
