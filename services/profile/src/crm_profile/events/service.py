"""Event orchestration: the ingest pipeline and the customer's event list.

Ingest. Each batch of the client stream is screened in order (every rule of `rules.problem_of`;
a repeated id within the batch is a duplicate), then written by one of a few writer tasks, each
batch in its own transaction on a plain asyncpg connection (the kit's `Database.raw`, for hot
paths): customers looked up, ids claimed in the ledger (an id accepted before, by any call, is a
duplicate), events COPYed into their month partitions, feed rows appended, commit. Counts are
taken only from committed batches, and the single response is sent after every writer has
finished, so an OK response means every accepted event is durable. While one batch commits, the
next is screened and written on another connection.

A batch that fails the whole call (empty, or over the ingest quota: events or encoded bytes per
message, `rules.IngestLimits`) lets the batches before it finish and be stored, as the contract
says; a database failure stops the stream with its error (UNAVAILABLE
or ABORTED, both safe to retry: the client resends and duplicates are counted, not stored).

Change feed. The contract publishes each accepted event on the change feed
(`crm.profile.v1.CustomerEvent`, `CHANGE_TYPE_EVENT`) for real-time segments and triggers, so
every accepted event gets its own outbox row, written set-wise in the batch's transaction
(`events.repository`). Batching by customer
would not shrink that much (a batch from a channel mixes thousands of customers) and would
change the payload type consumers expect. Duplicates and rejected events publish nothing.

Events are behaviour and transaction data, not identity data: ingest is not audited per event
(the feed row records who sent it); reading a customer's events is audited.

Merges and erasures: an event naming a merged customer is filed under the survivor at the end of
the merge chain (`original_customer` keeps the name sent); one naming an erased customer is
rejected (`CUSTOMER_ERASED`). Events stored before a merge stay under the merged customer, and
the survivor's list shows them while the merge is in force; an unmerge has nothing to move back.

How old an event may be is read from the retention policies once per call (a policy changed
during a call applies from the next one).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterable, Callable, Sequence
from datetime import UTC, datetime

import asyncpg
from opentelemetry import trace

from crm_profile.customers import rules as customer_rules
from crm_profile.events import rules
from crm_profile.events.model import Batch, Event, EventFilter, Rejection
from crm_profile.events.repository import EventRepository, IdsTaken, MonthPartitions, month_partitions_of
from crm_profile.privacy.retention.repository import RetentionRepository
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import Aborted, NotFound
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose

# The change-feed payload of a stored event (an encoded Any); made by the API layer, so this module
# stays free of generated protos.
EventPayload = Callable[[Event], bytes]
# Batches written at the same time per ingest call: one commits while the next is being written.
WRITERS = 2


@dataclasses.dataclass(frozen=True)
class IngestResult:
    accepted_count: int
    duplicate_count: int
    rejected_count: int
    rejections: Sequence[Rejection]
    rejections_truncated: bool


class _Tally:
    """What one ingest call has done so far; changed only once a batch has committed."""

    def __init__(self) -> None:
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self.failure: BaseException | None = None
        # Set once a batch held an id accepted before: the client is resending, and the next
        # batches are likely to as well, so they claim their ids the way that skips taken ones.
        self.resending = False
        # The earliest rejections in stream order: writers finish batches out of order, so keep
        # the smallest positions seen and cut when the list has grown well past the limit.
        self._rejections: list[Rejection] = []

    def reject(self, rejections: Sequence[Rejection]) -> None:
        self.rejected += len(rejections)
        self._rejections.extend(rejections)
        if len(self._rejections) > 2 * rules.MAX_REJECTIONS:
            self._rejections = sorted(self._rejections, key=lambda r: r.position)[:rules.MAX_REJECTIONS]

    def result(self) -> IngestResult:
        ordered = sorted(self._rejections, key=lambda r: r.position)
        return IngestResult(self.accepted, self.duplicates, self.rejected, ordered[:rules.MAX_REJECTIONS],
                            self.rejected > rules.MAX_REJECTIONS)


class Events:
    """The event use cases. Methods are keyword-only and take the calling principal."""

    def __init__(
        self, *, db: Database, repository: EventRepository, partitions: MonthPartitions, audit: AuditWriter,
        page_tokens: PageTokens, feed_payload: EventPayload, limits: rules.IngestLimits | None = None,
        policies: RetentionRepository | None = None, writers: int = WRITERS,
    ) -> None:
        self._db = db
        self._repository = repository
        self._partitions = partitions
        self._audit = audit
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._limits = limits or rules.IngestLimits()
        # The retention policies (with the legal floors of the settings), as the purge reads them.
        self._policies = policies or RetentionRepository({})
        self._writers = writers

    async def prepare(self) -> None:
        """At start-up: the partitions of this month and the next, so the month boundary needs no DDL.

        (The kit freezes the start-up objects out of the garbage collector's sight once the server
        runs: ingest allocates a few container objects per event, so the cyclic collector runs every
        few hundred events, and without the freeze each full collection walks every long-lived
        object of the process, about 2.5 us per ingested event.)
        """
        this_month = rules.month_of(datetime.now(UTC))
        async with self._db.raw() as connection:
            await self._partitions.ensure(connection, [this_month, rules.next_month(this_month)])

    async def ingest(self, *, batches: AsyncIterable[Batch], actor: Principal) -> IngestResult:
        """The whole ingest call; the one events use case that takes no unit of work.

        It is crmkit.db's documented exception for COPY-based bulk work: each batch commits on
        its own (an OK means every accepted event is durable; a failure keeps the batches before
        it), so no one transaction can span the call. Who opens and commits: this function, a
        read-only unit of work for the retention policies when the call starts, then in `_store`
        one raw connection and `connection.transaction()` per batch, committed as it ends.
        """
        # The policies as they are when the call starts: a change applies from the next call.
        async with self._db.unit_of_work(read_only=True) as session:
            retention = rules.retention_of(await self._policies.policies(session))
        tally = _Tally()
        queue: asyncio.Queue[tuple[int, list[tuple[int, Event]]] | None] = asyncio.Queue(maxsize=self._writers)
        writers = [asyncio.create_task(self._write_from(queue, tally, actor)) for _ in range(self._writers)]
        stopped: BaseException | None = None
        try:
            batch_index = 0
            async for batch in batches:
                rules.check_batch_size(len(batch.events), self._limits)
                rules.check_message_size(batch.encoded_bytes, self._limits)
                if tally.failure is not None:
                    break
                screened = self._screen(batch_index, batch.events, tally, retention)
                if screened:
                    await queue.put((batch_index, screened))
                batch_index += 1
        except asyncio.CancelledError:
            for writer in writers:
                writer.cancel()
            raise
        except Exception as exc:
            stopped = exc  # the batches before this one are still written, then the call fails
        for _ in writers:
            await queue.put(None)
        await asyncio.gather(*writers)
        if stopped is not None:
            raise stopped
        if tally.failure is not None:
            raise tally.failure
        return tally.result()

    def _screen(self, batch_index: int, batch: Sequence[Event], tally: _Tally, retention: rules.Retention
                ) -> list[tuple[int, Event]]:
        """The batch's valid events (first of each id), with their positions; the rest counted."""
        now = datetime.now(UTC)
        max_skew = self._limits.max_clock_skew
        seen: set[str] = set()
        valid: list[tuple[int, Event]] = []
        rejections: list[Rejection] = []
        for event_index, event in enumerate(batch):
            problem = rules.problem_of(event, now=now, retention=retention, max_skew=max_skew)
            if problem is not None:
                rejections.append(Rejection(batch_index, event_index, event.event_id, problem))
            elif event.event_id in seen:
                tally.duplicates += 1
            else:
                seen.add(event.event_id)
                valid.append((event_index, event))
        tally.reject(rejections)
        return valid

    async def _write_from(self, queue: asyncio.Queue[tuple[int, list[tuple[int, Event]]] | None], tally: _Tally,
                          actor: Principal) -> None:
        while (item := await queue.get()) is not None:
            if tally.failure is not None:
                continue  # keep draining, so the reader never waits on a full queue
            try:
                await self._write(*item, tally=tally, actor=actor)
            except Exception as exc:
                tally.failure = exc

    async def _write(self, batch_index: int, screened: list[tuple[int, Event]], *, tally: _Tally,
                     actor: Principal) -> None:
        months = month_partitions_of(e for _, e in screened)
        async with self._db.raw() as connection:
            if not self._partitions.all_known(months):
                await self._partitions.ensure(connection, months)
            try:
                try:
                    stored = await self._store(connection, batch_index, screened, actor=actor,
                                               all_new=not tally.resending)
                except IdsTaken:  # rolled back: the batch again, claiming only the ids still free
                    tally.resending = True
                    stored = await self._store(connection, batch_index, screened, actor=actor, all_new=False)
            except asyncpg.exceptions.DeadlockDetectedError as exc:
                raise Aborted("concurrent ingest of the same events; retry", reason="CONCURRENT_CHANGE") from exc
        fresh, known, rejections = stored
        tally.accepted += fresh
        tally.duplicates += known - fresh
        tally.reject(rejections)

    async def _store(self, connection: asyncpg.Connection, batch_index: int, screened: list[tuple[int, Event]], *,
                     actor: Principal, all_new: bool) -> tuple[int, int, list[Rejection]]:
        """One batch's transaction; (events stored, events of known customers, rejections).

        `all_new`: claim the ids with a plain insert, which costs the database a third less than
        one that skips taken ids, and raises IdsTaken (the transaction rolled back) if any was.
        """
        rejections: list[Rejection] = []
        fresh: list[Event] = []
        known: list[Event] = []
        # The batch's own transaction on a raw connection (the documented exception, see `ingest`).
        async with connection.transaction():
            await self._repository.prepare(connection)
            filing = await self._repository.filing(connection, sorted({e.sent_customer_id for _, e in screened}))
            ingest_time = datetime.now(UTC)
            for event_index, event in screened:
                filed = filing.get(event.sent_customer_id)
                problem = rules.filing_problem(filed)
                if filed is None or problem is not None:
                    rejections.append(Rejection(batch_index, event_index, event.event_id,
                                                problem or rules.CUSTOMER_NOT_FOUND))
                    continue
                customer_id = filed[0]
                event.customer_id = customer_id
                event.ingest_time = ingest_time
                event.original_customer_id = event.sent_customer_id if customer_id != event.sent_customer_id else ""
                known.append(event)
            if known:
                if all_new:
                    await self._repository.claim_new_ids(connection, known)
                    fresh = known
                else:
                    new_ids = await self._repository.claim_ids(connection, known)
                    fresh = [e for e in known if e.event_id in new_ids]
            if fresh:
                await self._repository.append(connection, fresh)
                await self._repository.publish(
                    connection, [(e.name, self._feed_payload(e)) for e in fresh], actor=actor.subject,
                    trace_id=_trace_id())
        return len(fresh), len(known), rejections

    async def list(
        self, *, uow: UnitOfWork, customer_id: str, narrowing: EventFilter, page_size: int, page_token: str,
        purpose: Purpose, actor: Principal,
    ) -> Page[Event]:
        rules.validate_filter(narrowing)
        limit = clamp_page_size(page_size)
        query = {"customer": customer_id, "types": list(narrowing.event_types), "channels": list(narrowing.channels),
                 "from": narrowing.occur_from, "to": narrowing.occur_to}
        after = self._page_tokens.decode(page_token, query=query)
        customer = await self._repository.customer(uow, customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")
        customer_rules.check_book(actor, customer)
        customer_rules.ensure_active(customer)
        shown = await self._repository.merged_into(uow, customer_id)
        found = await self._repository.page(
            uow, customer_ids=shown, narrowing=narrowing,
            after=(datetime.fromisoformat(after[0]), after[1]) if after is not None else None, limit=limit + 1)
        await self._audit.record(AuditEntry(principal=actor.subject, action="event.list",
                                            resource_name=f"customers/{customer_id}", purpose=purpose.purpose,
                                            justification=purpose.justification))
        return self._page_tokens.page(found, limit=limit, key=_event_key, query=query)


def _trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def _event_key(event: Event) -> list[str]:
    """Where an event list's next page starts: after this event, in (occur_time, event_id) order."""
    assert event.occur_time is not None  # a stored event has one (the column is NOT NULL)
    return [event.occur_time.isoformat(), event.event_id]
