"""Following a peer's change feed into one of campaign's read models: the one way campaign does it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_campaign import tables
from crmkit.db import Database
from crmkit.feed_consumer import ChangeEvent
from crmkit.peer_feed import ApplyEvent, PeerFeed, PeerFeedFollower, ServiceToken
from crmkit.settings import ServiceSettings

SUBJECT = "service:campaign"


def together(first: ApplyEvent, then: ApplyEvent | None) -> ApplyEvent:
    """Both applies on each event, in one transaction; whether either changed anything."""
    if then is None:
        return first

    async def both(connection: AsyncConnection, event: ChangeEvent) -> bool:
        applied = bool(await first(connection, event))
        return bool(await then(connection, event)) or applied

    return both


def follow(*, name: str, target: str, stub: Callable[[grpc.aio.Channel], Any], request_type: Callable[..., Message],
           resource_types: Sequence[str], apply: ApplyEvent, db: Database, settings: ServiceSettings,
           max_backoff_seconds: float) -> PeerFeedFollower:
    return PeerFeedFollower(
        feed=PeerFeed(name=name, target=target, stub=stub, request_type=request_type, resource_types=resource_types),
        db=db, cursors=tables.feed_cursor, apply=apply, token_source=ServiceToken(settings, subject=SUBJECT),
        deadline_seconds=settings.peer_deadline_seconds, tls_ca_file=settings.tls_ca_file,
        max_backoff_seconds=max_backoff_seconds)
