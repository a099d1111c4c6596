"""Risk follows profile's change feed into its customer read model (`crmkit.peer_feed`).

The follower is a background task started after the server is wired; risk serves on a stale
model while profile is down, and health stays SERVING with the lag in its details. Profile
answers CURSOR_EXPIRED when its retention purged events this model never applied: the model is
marked `needs_rebuild` (health details) until it is rebuilt from profile's List RPCs.
"""

from __future__ import annotations

from crm.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from crm_risk.customers import rules
from crm_risk.customers.service import CustomerReadModel
from crm_risk.customers.tables import feed_cursor
from crmkit.db import Database
from crmkit.peer_feed import AfterApply, PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.settings import ServiceSettings

FEED = "profile"
SUBJECT = "service:risk"


def follow_profile(*, db: Database, model: CustomerReadModel, settings: ServiceSettings, target: str,
                   deadline_seconds: float, max_backoff_seconds: float = 10.0,
                   after_apply: AfterApply | None = None, feed_name: str = FEED) -> PeerFeedFollower:
    """`after_apply` runs in the transaction of each event the model applied (alert triggers);
    `feed_name` names the cursor (a test gives its own)."""
    return PeerFeedFollower(
        feed=PeerFeed(name=feed_name, target=target, stub=profile_service_pb2_grpc.ProfileServiceStub,
                      request_type=profile_service_pb2.WatchChangesRequest, resource_types=rules.FOLLOWED_TYPES),
        db=db, cursors=feed_cursor, apply=model.apply, token_source=ServiceToken(settings, subject=SUBJECT),
        deadline_seconds=deadline_seconds, tls_ca_file=settings.tls_ca_file, max_backoff_seconds=max_backoff_seconds,
        after_apply=after_apply, on_expired=model.expired)


class ModelDetails:
    """Health details of the model itself, beside the follower's own (`profile_feed_*`)."""

    def __init__(self, *, db: Database, model: CustomerReadModel) -> None:
        self._db = db
        self._model = model

    async def __call__(self) -> dict[str, object]:
        status = await self._model.status(db=self._db)
        return {
            "customers_as_of": status.newest_event_at.isoformat() if status.newest_event_at else "",
            "customer_count": status.customer_count,
            "customer_model_needs_rebuild": status.needs_rebuild,
        }
