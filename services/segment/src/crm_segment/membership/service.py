"""Membership use cases: preview a rule, start and run a materialisation, page through members
and their history.

Preview and the pages read on plain asyncpg connections (`Database.raw()`, the hot read path)
in one read-only snapshot each; a materialisation is one transaction that locks its segment,
replaces the members, records every entry and exit, and marks its operation SUCCEEDED
(`complete_in`), so a failed or cancelled run changes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from datetime import datetime

import asyncpg
from google.protobuf import any_pb2
from google.protobuf.message import Message

from crm_segment.cel import SqlCondition
from crm_segment.membership import repository, rules
from crm_segment.membership.model import KIND, ChangeCause, Materialised, Member, MembershipChange, Preview
from crm_segment.segments import rules as segment_rules
from crm_segment.segments.model import RuleAnalysis
from crm_segment.segments.repository import SegmentRepository
from crm_segment.segments.service import MEMBER_TYPE
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation, Started, complete_in, name_of, parse_name
from crmkit.outbox import ChangeType, current_trace_id
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

log = get_logger("crm.segment.membership")

# The operation's response, made by the API layer so this module stays free of generated messages.
ResultMessage = Callable[[Materialised], Message]
# A membership change as the feed's payload (the same message real-time evaluation publishes).
ChangeMessage = Callable[[MembershipChange], Message]
# Changes published per statement: bounded memory for a million-member first materialisation.
PUBLISH_BATCH = 5000
ACTOR = "service:segment"


class Membership:
    def __init__(self, *, db: Database, segments: SegmentRepository, operations: Operations, runner: OperationRunner,
                 idempotency: IdempotencyKeys, page_tokens: PageTokens, result_message: ResultMessage,
                 change_message: ChangeMessage) -> None:
        self._db = db
        self._segments = segments
        self._operations = operations
        self._runner = runner
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._result_message = result_message
        self._change_message = change_message

    async def preview(self, *, rule: str | None, segment_id: str | None, sample_size: int) -> Preview:
        """Count and sample what a rule (or a saved segment's rule) selects now; saves nothing."""
        v = Violations()
        size = rules.sample_size(sample_size, v)
        if rule is None and segment_id is None:
            v.add("rule", "is required: give a rule or a segment")
        if rule is not None:
            segment_rules.check_rule_text(rule)
        v.raise_if_any()
        async with self._db.raw() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            field = "rule"
            if segment_id is not None:
                field = "segment"
                rule = await repository.segment_rule(connection, segment_id)
                if rule is None:
                    raise _not_found(segment_id)
            assert rule is not None
            condition, analysis = await _compile(rule, field)
            count, total, sample = await repository.count_and_sample(connection, condition, size)
            as_of = await repository.features_as_of(connection)
        return Preview(count=count, total_customers=total, sample_customer_ids=tuple(sample),
                       warnings=analysis.issues, features_as_of=as_of)

    async def start_materialise(self, *, uow: UnitOfWork, segment_id: str, request_id: uuid.UUID | None,
                                request: Message, actor: Principal) -> Started:
        """Create the PENDING `segment.materialise` operation in `uow` (idempotent for
        `request_id`); the caller launches it once `uow` has committed."""
        if await self._segments.get(uow, segment_id) is None:
            raise _not_found(segment_id)
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="MaterialiseSegment",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=request,
                                                  operation_id=operation_id)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._materialise, segment_id, operation_id))
            log.info("segment_materialise_started", segment_id=segment_id, operation_id=str(operation_id))

        return Started(operation, launch)

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _materialise(self, segment_id: str, operation_id: uuid.UUID, run: RunningOperation) -> Message:
        """The run: the segment's current rule over the read model, members and history replaced in
        one transaction that also completes the operation."""
        async with self._db.raw() as connection, connection.transaction():
            segment = await repository.lock_segment(connection, segment_id)
            if segment is None:
                raise _not_found(segment_id)
            compiled = await asyncio.to_thread(segment_rules.compile_rule, segment["rule"])
            if compiled.condition is None:
                raise FailedPrecondition("the segment's rule no longer checks against the catalogue: "
                                         + "; ".join(i.describe() for i in compiled.analysis.errors),
                                         reason="RULE_INVALID", metadata={"segment_id": segment_id})
            await run.progress(stage="evaluating")
            as_of = await repository.features_as_of(connection)
            members, entered, left = await repository.replace_members(
                connection, compiled.condition, segment_id=segment_id, rule_version=segment["rule_version"],
                cause=ChangeCause.MATERIALISATION, operation_id=operation_id)
            await repository.record_materialised(connection, segment_id=segment_id, member_count=members,
                                                 operation_name=name_of(operation_id))
            await run.progress(stage="publishing")
            await self._publish(connection, segment_id=segment_id, operation_id=operation_id)
            # The last look at the cancel flag before the work becomes visible.
            await run.progress(done=members, total=members, stage="committing")
            result = self._result_message(Materialised(
                segment_id=segment_id, rule_version=segment["rule_version"], member_count=members,
                entered_count=entered, left_count=left, features_as_of=as_of))
            await complete_in(connection, operation_id, result)
        log.info("segment_materialised", segment_id=segment_id, operation_id=str(operation_id), members=members,
                 entered=entered, left=left)
        return result

    async def _publish(self, connection: asyncpg.Connection, *, segment_id: str, operation_id: uuid.UUID) -> None:
        """Put the run's entries and exits on segment's feed, as real-time evaluation does, so
        campaign's membership model follows batch segments too; committed with the members."""
        trace_id = current_trace_id()
        async for changes in repository.changes_of_run(connection, segment_id=segment_id, operation_id=operation_id,
                                                       batch=PUBLISH_BATCH):
            events = [(f"segments/{c.segment_id}/members/{c.customer_id}", _packed(self._change_message(c)))
                      for c in changes]
            await repository.publish_members(connection, events, resource_type=MEMBER_TYPE,
                                             change_type=ChangeType.CHANGE_TYPE_EVENT, actor=ACTOR,
                                             trace_id=trace_id)

    async def list_members(self, *, segment_id: str, page_size: int, page_token: str,
                           entered_after: datetime | None) -> tuple[Page[Member], int]:
        """A page of current members in customer order, and how many match in all."""
        limit = clamp_page_size(page_size)
        query = {"segment": segment_id, "entered_after": entered_after.isoformat() if entered_after else None}
        after = self._page_tokens.decode(page_token, query=query)
        async with self._db.raw() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            if not await repository.segment_exists(connection, segment_id):
                raise _not_found(segment_id)
            found = await repository.members_page(connection, segment_id=segment_id, entered_after=entered_after,
                                                  after=after, limit=limit + 1)
            total = await repository.member_count(connection, segment_id=segment_id, entered_after=entered_after)
        return self._page_tokens.page(found, limit=limit, key=lambda m: m.customer_id, query=query), total

    async def list_changes(self, *, parent: str, customer: str, kind: int, since: datetime | None,
                           until: datetime | None, page_size: int, page_token: str) -> Page[MembershipChange]:
        """Entries and exits, newest first, of one segment or (with a customer) of every segment."""
        segment_id, customer_id, change_kind = rules.changes_filter(parent=parent, customer=customer, kind=kind,
                                                                    since=since, until=until)
        limit = clamp_page_size(page_size)
        query = {"parent": parent, "customer": customer, "kind": kind,
                 "since": since.isoformat() if since else None, "until": until.isoformat() if until else None}
        after = self._page_tokens.decode(page_token, query=query)
        async with self._db.raw() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            if segment_id is not None and not await repository.segment_exists(connection, segment_id):
                raise _not_found(segment_id)
            found = await repository.changes_page(
                connection, segment_id=segment_id, customer_id=customer_id, kind=change_kind, since=since,
                until=until, after=(datetime.fromisoformat(after[0]), int(after[1])) if after else None,
                limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=lambda c: [c.changed_at.isoformat(), c.change_id],
                                      query=query)


def _packed(message: Message) -> bytes:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed.SerializeToString()


async def _compile(rule: str, field: str) -> tuple[SqlCondition, RuleAnalysis]:
    """The rule's SQL condition; INVALID_ARGUMENT on `field` with the checker's position and reason."""
    compiled = await asyncio.to_thread(segment_rules.compile_rule, rule)
    if compiled.condition is None:
        v = Violations()
        for issue in compiled.analysis.errors:
            v.add(field, issue.describe())
        v.raise_if_any()
    assert compiled.condition is not None
    return compiled.condition, compiled.analysis


def _not_found(segment_id: str) -> NotFound:
    return NotFound(f"segment {segment_id} not found", reason="SEGMENT_NOT_FOUND", metadata={"segment_id": segment_id})



