"""Segment follows profile's change feed into the feature read model, as a background task.

The task starts after the server is wired and stops when the service closes; it never blocks
start-up, so segment serves (on a stale model) while profile is down, and health stays SERVING:
the model is behind, not wrong. The lag (the age of the newest profile event applied) is in the
health details and the `segment.feature_feed.lag` gauge.

Profile answers CURSOR_EXPIRED (FAILED_PRECONDITION) when its retention purged events this model
never applied: the follower stops, logs it and marks the model `needs_rebuild` (health details).
Rebuilding from profile's List RPCs, as an operation, is a later step; until then an operator
clears the model and the `feed_cursor` row of `profile` to replay what profile retains.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry import metrics
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from crm_segment import tables
from crm_segment.features import feed, rules
from crm_segment.features.model import ReadModelStatus
from crm_segment.features.service import FeatureReadModel
from crmkit.auth import Role, issue_token
from crmkit.channels import open_channel
from crmkit.db import Database
from crmkit.feed_consumer import FeedConsumer
from crmkit.logs import get_logger
from crmkit.settings import ServiceSettings

log = get_logger("crm.segment.features")

FEED = "profile"
SUBJECT = "service:segment"
_TOKEN_LIFETIME_SECONDS = 3600

# Runs after an event changed the read model, in the same transaction (real-time membership).
AfterApply = Callable[[AsyncConnection, feed.ChangeEvent], Awaitable[object]]


class ServiceToken:
    """Segment's own identity towards profile (role SERVICE), minted again before it expires."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._settings = settings
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        if time.time() >= self._renew_at:
            s = self._settings
            self._token = issue_token(secret=s.jwt_secret.get_secret_value(), subject=SUBJECT, roles=[Role.SERVICE],
                                      issuer=s.jwt_issuer, audience=s.jwt_audience,
                                      lifetime_seconds=_TOKEN_LIFETIME_SECONDS)
            self._renew_at = time.time() + _TOKEN_LIFETIME_SECONDS / 2
        return self._token


def cursor_expired(error: grpc.aio.AioRpcError) -> bool:
    if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return False
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return False
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info) and info.reason == "CURSOR_EXPIRED":
            return True
    return False


class ProfileFollower:
    def __init__(self, *, db: Database, model: FeatureReadModel, target: str, deadline_seconds: float,
                 token_source: ServiceToken, tls_ca_file: str | None = None,
                 max_backoff_seconds: float = 10.0, after_apply: AfterApply | None = None,
                 feed_name: str = FEED) -> None:
        self._db = db
        self._model = model
        self._after_apply = after_apply
        self._channel = open_channel(target, deadline_seconds=deadline_seconds, token_source=token_source,
                                     tls_ca_file=tls_ca_file)
        self._stub = profile_service_pb2_grpc.ProfileServiceStub(self._channel)
        self.consumer = FeedConsumer(name=feed_name, db=db, cursors=tables.feed_cursor, open_stream=self._open_stream,
                                     apply=self._apply, max_backoff_seconds=max_backoff_seconds)
        self._task: asyncio.Task[None] | None = None
        self.status: ReadModelStatus | None = None
        meter = metrics.get_meter("crm_segment.features")
        self._applied = meter.create_counter("segment.feature_feed.events",
                                             description="Profile change events that changed the read model")
        meter.create_observable_gauge("segment.feature_feed.lag", callbacks=[self._observe_lag], unit="s",
                                      description="Age of the newest profile event the read model applied")

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="profile-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._channel.close()

    async def details(self) -> dict[str, object]:
        """Health details: how current the model is and whether profile's feed is connected."""
        self.status = status = await self._model.status(db=self._db)
        return {
            "features_as_of": status.newest_event_at.isoformat() if status.newest_event_at else "",
            "feature_lag_seconds": round(status.lag_seconds, 3) if status.lag_seconds is not None else None,
            "feature_customers": status.customer_count,
            "feature_model_needs_rebuild": status.needs_rebuild,
            "profile_feed_connected": self.consumer.connected.is_set(),
        }

    async def _follow(self) -> None:
        try:
            await self.consumer.run()
        except grpc.aio.AioRpcError as error:
            if cursor_expired(error):
                self._model.expired(feed_name=FEED)
            else:  # refused (identity, access): a configuration to fix; segment serves on
                log.error("profile_feed_stopped", feed=FEED, code=error.code().name)

    async def _open_stream(self, after: str) -> AsyncIterator[list[feed.ChangeEvent]]:
        request = profile_service_pb2.WatchChangesRequest(after_cursor=after, resource_types=rules.FOLLOWED_TYPES)
        async for response in self._stub.WatchChanges(request):
            yield list(response.events)

    async def _apply(self, connection: AsyncConnection, event: feed.ChangeEvent) -> None:
        if await self._model.apply(connection, event):
            self._applied.add(1)
            if self._after_apply is not None:
                await self._after_apply(connection, event)

    def _observe_lag(self, _options: metrics.CallbackOptions) -> list[metrics.Observation]:
        lag = rules.lag_seconds(self.status.newest_event_at if self.status else None, now=datetime.now(UTC))
        return [] if lag is None else [metrics.Observation(lag)]
