"""Campaign follows profile's Customer events into `customer_feature` (crmkit.peer_feed): what
propensity training reads about a customer besides their contacts. Only categorical and numeric
facts are kept (occupation, and custom attributes holding an enum, a boolean or a number): free
text and dates, which may be personal data, are not copied.

A follower of its own (feed `profile-customer-features`, its own cursor), so it starts from the
beginning of profile's feed whatever the other followers have read."""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_campaign.audience import peers
from crm_campaign.propensity.tables import customer_feature as t
from crmkit.db import Database
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import PeerFeedFollower
from crmkit.settings import ServiceSettings

FEED = "profile-customer-features"
CUSTOMER_TYPE = "crm.profile.v1.Customer"


def features_of(customer: customer_pb2.Customer) -> dict[str, float | str | bool]:
    """The customer's modelling features: `occupation` and `attributes.<id>` (enum, bool, number)."""
    features: dict[str, float | str | bool] = {}
    if customer.occupation:
        features["occupation"] = customer.occupation
    for key, value in sorted(customer.attributes.items()):
        kept = _value(value)
        if kept is not None:
            features[f"attributes.{key}"] = kept
    return features


def _value(value: attribute_pb2.AttributeValue) -> float | str | bool | None:
    kind = value.WhichOneof("value")
    if kind == "enum_value":
        return value.enum_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return float(value.int_value)
    if kind == "decimal_value":
        try:
            return float(value.decimal_value.value)
        except ValueError:
            return None
    return None


async def apply(connection: AsyncConnection, event: ChangeEvent) -> bool:
    """One Customer event: the row takes the customer's current features (deleted: none)."""
    if event.resource_type != CUSTOMER_TYPE or not event.resource_name.startswith("customers/"):
        return False
    features: dict[str, float | str | bool] = {}
    if event.change_type != change_event_pb2.CHANGE_TYPE_DELETED:
        customer = customer_pb2.Customer()
        if not event.payload.Unpack(customer):
            return False
        features = features_of(customer)
    values = {"features": features, "event_at": event.occurred_at.ToDatetime(tzinfo=UTC)}
    statement = pg.insert(t).values(customer_id=event.resource_name.removeprefix("customers/"), **values)
    await connection.execute(statement.on_conflict_do_update(index_elements=[t.c.customer_id], set_=values))
    return True


def follow_profile_customer_features(*, db: Database, settings: ServiceSettings, target: str,
                                     max_backoff_seconds: float) -> PeerFeedFollower:
    return peers.follow(name=FEED, target=target, stub=profile_service_pb2_grpc.ProfileServiceStub,
                        request_type=profile_service_pb2.WatchChangesRequest, resource_types=(CUSTOMER_TYPE,),
                        apply=apply, db=db, settings=settings, max_backoff_seconds=max_backoff_seconds)
