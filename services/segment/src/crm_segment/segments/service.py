"""Segment orchestration, in the caller's unit of work (crmkit.db's rule), the change feed in the same transaction."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

from google.protobuf.message import Message

from crm.common.v1 import change_event_pb2
from crm_segment.segments import rules
from crm_segment.segments.model import EvaluationMode, Feature, RuleAnalysis, Segment
from crm_segment.segments.repository import SegmentRepository
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import ChangeFeed, ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size

log = get_logger("crm.segment")

# Resource types on the change feed (the contract names them by their proto types).
SEGMENT_TYPE = "crm.segment.v1.Segment"
MEMBER_TYPE = "crm.segment.v1.SegmentMember"

# Turns a stored segment into the change-feed payload; supplied by the API layer so this module
# stays free of generated messages.
FeedPayload = Callable[[Segment], Message]
EventBatch = list[change_event_pb2.ChangeEvent]


class Segments:
    """The segment use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(
        self, *, repository: SegmentRepository, outbox: Outbox, idempotency: IdempotencyKeys,
        page_tokens: PageTokens, feed: ChangeFeed, feed_payload: FeedPayload,
    ) -> None:
        self._repository = repository
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed = feed
        self._feed_payload = feed_payload

    async def create(self, *, uow: UnitOfWork, segment: Segment, request_id: uuid.UUID | None, request: Message,
                     actor: Principal) -> Segment:
        segment = rules.normalise(segment)
        if not segment.segment_id:
            segment = dataclasses.replace(segment, segment_id=f"segment-{uuid.uuid4().hex[:16]}")
        analysis = await _analyse(segment)
        rules.validate(segment, analysis=analysis).raise_if_any()
        assert analysis is not None, "a rule that passed validation was analysed"
        segment = dataclasses.replace(segment, creator=actor.subject, rule_version=1,
                                      referenced_features=analysis.referenced_features)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateSegment",
            resource_name=segment.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        created = await self._repository.insert(uow, segment)
        if created is None:
            if await self._repository.exists(uow, segment.segment_id):
                raise AlreadyExists(f"segment {segment.segment_id} already exists", reason="SEGMENT_EXISTS",
                                    metadata={"segment_id": segment.segment_id})
            raise _display_name_taken(segment)
        await self._publish(uow, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("segment_created", segment_id=created.segment_id, rule_version=created.rule_version)
        return created

    async def get(self, *, uow: UnitOfWork, segment_id: str) -> Segment:
        found = await self._repository.get(uow, segment_id)
        if found is None:
            raise _not_found(segment_id)
        return found

    async def list(
        self, *, uow: UnitOfWork, page_size: int, page_token: str, display_name_contains: str, evaluation_mode: int,
        feature: str, creator: str,
    ) -> Page[Segment]:
        rules.validate_list_filter(display_name_contains=display_name_contains, evaluation_mode=evaluation_mode,
                                   feature=feature)
        limit = clamp_page_size(page_size)
        query = {"contains": display_name_contains, "mode": evaluation_mode, "feature": feature, "creator": creator}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page(
            uow, after=tuple(after) if after is not None else None, limit=limit + 1,
            display_name_contains=display_name_contains, evaluation_mode=EvaluationMode(evaluation_mode),
            feature=feature, creator=creator)
        page = self._page_tokens.page(found, limit=limit, key=lambda row: [row[0], row[1].segment_id], query=query)
        return Page([segment for _, segment in page.items], page.next_page_token)

    async def update(self, *, uow: UnitOfWork, changes: Segment, paths: Sequence[str], etag: str,
                     actor: Principal) -> Segment:
        rules.check_mask(paths)
        current = await self._locked(uow=uow, segment_id=changes.segment_id, etag=etag)
        merged = rules.apply(current, changes, paths)
        analysis = await _analyse(merged)
        rules.validate(merged, analysis=analysis).raise_if_any()
        assert analysis is not None, "a rule that passed validation was analysed"
        merged = dataclasses.replace(merged, referenced_features=analysis.referenced_features)
        updated = await self._repository.update(uow, merged)
        if updated is None:
            raise _display_name_taken(merged)
        await self._publish(uow, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("segment_updated", segment_id=updated.segment_id, rule_version=updated.rule_version,
                 fields=sorted(paths))
        return updated

    async def delete(self, *, uow: UnitOfWork, segment_id: str, etag: str, actor: Principal) -> None:
        current = await self._locked(uow=uow, segment_id=segment_id, etag=etag)
        await self._repository.delete(uow, segment_id)
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=SEGMENT_TYPE)
        log.info("segment_deleted", segment_id=segment_id)

    async def validate_rule(self, *, rule: str, evaluation_mode: int) -> RuleAnalysis:
        rules.check_rule_text(rule)
        mode = rules.read_evaluation_mode(evaluation_mode, "evaluation_mode")
        mode = EvaluationMode.BATCH if mode is EvaluationMode.UNSPECIFIED else mode
        return await asyncio.to_thread(rules.analyse, rule, mode=mode)

    def list_features(self, *, page_size: int, page_token: str, real_time_only: bool) -> Page[Feature]:
        limit = clamp_page_size(page_size)
        query = {"real_time_only": real_time_only}
        after = self._page_tokens.decode(page_token, query=query)
        found = rules.feature_page(after=after, limit=limit + 1, real_time_only=real_time_only)
        return self._page_tokens.page(found, limit=limit, key=lambda feature: feature.feature, query=query)

    async def watch(
        self, *, after_cursor: str, resource_types: Sequence[str], segments: Sequence[str],
    ) -> AsyncIterator[EventBatch]:
        """The change feed from just after `after_cursor`; membership events only of `segments`
        when any are named (other resource types pass)."""
        prefixes = tuple(f"{name}/members/" for name in rules.validate_watched_segments(segments))
        async for events in self._feed.stream(after_cursor=after_cursor, resource_types=resource_types):
            if prefixes:
                events = [e for e in events
                          if e.resource_type != MEMBER_TYPE or e.resource_name.startswith(prefixes)]
            if events:
                yield events

    async def _locked(self, *, uow: UnitOfWork, segment_id: str, etag: str) -> Segment:
        return await load_for_update(self._repository.get(uow, segment_id, for_update=True), etag=etag,
                                     not_found=lambda: _not_found(segment_id))

    async def _replay(self, *, uow: UnitOfWork, name: str) -> Segment:
        """The segment an earlier call with the same request_id created."""
        segment_id = name.removeprefix("segments/")
        existing = await self._repository.get(uow, segment_id)
        if existing is None:
            raise NotFound("the segment created by this request no longer exists", reason="SEGMENT_NOT_FOUND",
                           metadata={"segment_id": segment_id})
        return existing

    async def _publish(self, uow: UnitOfWork, segment: Segment, change_type: int, actor: Principal) -> None:
        await self._outbox.append(uow, resource_name=segment.name, change_type=change_type,
                                  payload=self._feed_payload(segment), actor=actor.subject)


async def _analyse(segment: Segment) -> RuleAnalysis | None:
    """The rule's analysis, None when it is empty or too long to parse (validation says so).

    Parsing is CPU work (a quarter of a second for the longest rule allowed), so it runs in a
    thread to keep the event loop serving other calls.
    """
    if not rules.rule_length_ok(segment.rule):
        return None
    return await asyncio.to_thread(rules.analyse, segment.rule, mode=segment.evaluation_mode)


def _not_found(segment_id: str) -> NotFound:
    return NotFound(f"segment {segment_id} not found", reason="SEGMENT_NOT_FOUND", metadata={"segment_id": segment_id})


def _display_name_taken(segment: Segment) -> AlreadyExists:
    return AlreadyExists("another segment already has this display name (names are unique regardless of case)",
                         reason="DISPLAY_NAME_TAKEN", metadata={"field": "segment.display_name"})

