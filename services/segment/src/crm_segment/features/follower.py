"""Segment follows profile's change feed into the feature read model (`crmkit.peer_feed`).

The follower is a background task started after the server is wired; segment serves on a stale
model while profile is down, and health stays SERVING. Profile answers CURSOR_EXPIRED when its
retention purged events this model never applied: the model is marked `needs_rebuild` (health
details) until it is rebuilt from profile's List RPCs.
"""

from __future__ import annotations

from crm.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from crm_segment import tables
from crm_segment.features import rules
from crm_segment.features.service import FeatureReadModel
from crmkit.db import Database
from crmkit.peer_feed import AfterApply, OnExpired, PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.settings import ServiceSettings

FEED = "profile"
SUBJECT = "service:segment"


def profile_feed(target: str, *, name: str = FEED) -> PeerFeed:
    return PeerFeed(name=name, target=target, stub=profile_service_pb2_grpc.ProfileServiceStub,
                    request_type=profile_service_pb2.WatchChangesRequest, resource_types=rules.FOLLOWED_TYPES)


def follow_profile(*, db: Database, model: FeatureReadModel, settings: ServiceSettings, target: str,
                   deadline_seconds: float, max_backoff_seconds: float = 10.0,
                   after_apply: AfterApply | None = None, on_expired: OnExpired | None = None,
                   feed_name: str = FEED) -> PeerFeedFollower:
    """`on_expired` starts the rebuild (`rebuild.FeatureRebuild.start`); without one the model is
    only marked `needs_rebuild`."""
    return PeerFeedFollower(
        feed=profile_feed(target, name=feed_name), db=db, cursors=tables.feed_cursor, apply=model.apply,
        token_source=ServiceToken(settings, subject=SUBJECT), deadline_seconds=deadline_seconds,
        tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds, after_apply=after_apply,
        on_expired=on_expired or (lambda: model.expired(feed_name=feed_name)))


class ModelDetails:
    """Health details of the model itself, beside the follower's own (`profile_feed_*`)."""

    def __init__(self, *, db: Database, model: FeatureReadModel) -> None:
        self._db = db
        self._model = model

    async def __call__(self) -> dict[str, object]:
        status = await self._model.status(db=self._db)
        return {
            "features_as_of": status.newest_event_at.isoformat() if status.newest_event_at else "",
            "feature_lag_seconds": round(status.lag_seconds, 3) if status.lag_seconds is not None else None,
            "feature_customers": status.customer_count,
            "feature_model_needs_rebuild": status.needs_rebuild,
        }
