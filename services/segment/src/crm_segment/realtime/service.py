"""Re-evaluate one customer after profile's feed changed their features, inside the feed
consumer's transaction (crmkit.feed_consumer), which also stores the cursor: the read model's
change, the entries and exits, their history and their events on segment's own feed commit
together or not at all.

Called only when the read model actually changed (`FeatureReadModel.apply` returned True), so a
replayed event evaluates nothing; and because the closures decide membership from the row as it
now is, evaluating the same row again would find no transition anyway.

Compiled closures are cached per (segment, rule_version): a rule change bumps the version, so a
stale closure is never used, and the cache holds one entry per live segment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from google.protobuf.message import Message
from opentelemetry import metrics
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm_segment.cel.to_python import Predicate
from crm_segment.features.rules import customer_id_of
from crm_segment.membership.model import ChangeCause, MembershipChange
from crm_segment.realtime import repository, rules
from crm_segment.realtime.model import LiveSegment
from crm_segment.segments.service import MEMBER_TYPE
from crmkit.logs import get_logger
from crmkit.outbox import Outbox

log = get_logger("crm.segment.realtime")

ACTOR = "service:segment"
EVENT = change_event_pb2.CHANGE_TYPE_EVENT

# The feed's payload, made by the API layer so this module stays free of generated messages.
ChangeMessage = Callable[[MembershipChange], Message]


class RealTimeMembership:
    def __init__(self, *, outbox: Outbox, change_message: ChangeMessage) -> None:
        self._outbox = outbox
        self._change_message = change_message
        self._closures: dict[str, tuple[int, Predicate | None]] = {}
        meter = metrics.get_meter("crm_segment.realtime")
        self._duration = meter.create_histogram(
            "segment.realtime.evaluation.duration", unit="ms",
            description="Time to re-evaluate one changed customer against every real-time segment")
        self._changes = meter.create_counter("segment.realtime.membership_changes",
                                             description="Entries and exits decided by real-time evaluation")

    async def evaluate(self, connection: AsyncConnection, event: change_event_pb2.ChangeEvent
                       ) -> list[MembershipChange]:
        """Bring the event's customer's memberships in line with their features now; the changes made."""
        customer_id = customer_id_of(event.resource_name)
        if customer_id is None:
            return []
        return await self.evaluate_customer(connection, customer_id, event.event_id)

    async def evaluate_customer(self, connection: AsyncConnection, customer_id: str, source_event_id: str
                                ) -> list[MembershipChange]:
        """The same for a customer an event is about without naming them (a peer's complaint)."""
        started = time.perf_counter()
        raw = await repository.raw_connection(connection)
        segments, members_of = await repository.live_segments(raw, customer_id)
        if not segments:
            return []
        self._forget_all_but(segments)
        compiled = [(s, p) for s in segments if (p := await self._closure(s)) is not None]
        features = await repository.features(raw, customer_id)
        decided = rules.transitions(compiled, features, members_of)
        changes: list[MembershipChange] = []
        if decided:
            cause = ChangeCause.FEATURE_CHANGED if features is not None else ChangeCause.CUSTOMER_REMOVED
            changes = await repository.record(raw, customer_id=customer_id, transitions=decided, cause=cause,
                                              source_event_id=source_event_id)
            await self._outbox.append_many(
                connection, [(f"segments/{c.segment_id}/members/{customer_id}", EVENT, self._change_message(c))
                             for c in changes], actor=ACTOR, resource_type=MEMBER_TYPE)
            self._changes.add(len(changes))
        self._duration.record((time.perf_counter() - started) * 1000)
        return changes

    def _forget_all_but(self, segments: list[LiveSegment]) -> None:
        """Drop the closures of segments no longer live (deleted, or switched to batch)."""
        for segment_id in self._closures.keys() - {s.segment_id for s in segments}:
            del self._closures[segment_id]

    async def _closure(self, segment: LiveSegment) -> Predicate | None:
        cached = self._closures.get(segment.segment_id)
        if cached is not None and cached[0] == segment.rule_version:
            return cached[1]
        # Parsing is CPU work (up to a quarter of a second for the longest rule): off the loop.
        predicate = await asyncio.to_thread(rules.compile_predicate, segment.rule)
        if predicate is None:
            log.error("realtime_rule_invalid", segment_id=segment.segment_id, rule_version=segment.rule_version)
        self._closures[segment.segment_id] = (segment.rule_version, predicate)
        return predicate
