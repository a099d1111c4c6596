"""Retention policies and their enforcement: ListRetentionPolicies, UpdateRetentionPolicy and the
purge (RunRetentionPurge, and once a day by itself).

The purge is a long-running operation coordinated on the service's event loop: its work is SQL
the database does (set-wise deletes, whole month partitions dropped), committed in batches, so
what was purged before a cancellation or failure stays purged and a new run carries on.

ListRetentionPolicies, UpdateRetentionPolicy and RunRetentionPurge run in the unit of work their
servicer opens (crmkit.db's rule); RunRetentionPurge only creates the operation there. The purge
itself (`_run` and the `_purge_*` steps it calls) and the daily schedule are background work, not
an RPC: like the kit's FeedConsumer they open their own unit of work per batch.

- Events (TRANSACTION, BEHAVIOUR) counted from their own time: month partitions wholly past the
  cutoff are dropped (their ids leave the id ledger first), the rest deleted or anonymised row
  by row.
- Classes counted from the end of the relationship: closed customers past the cutoff go through
  the erasure path (`data_subject.eraser`) for the classes that are due; when every class on the record
  is due, the record becomes an ERASED tombstone as after EraseCustomer. Customers with open
  holdings are skipped (a closed relationship with open holdings is a data problem to fix first).
- Audit records: deleted in sequence order, each chain's newest kept, the last deleted hash of
  each chain kept as its anchor (`audit_anchor`) so the chain still verifies.
- The change feed: events past `CRM_PROFILE_FEED_RETENTION_DAYS` (crmkit.outbox), on every run
  over all classes.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from crm_profile.attributes.model import DataClass
from crm_profile.customers.model import ERASED, Customer
from crm_profile.customers.repository import CustomerRepository
from crm_profile.history.model import ChangeSource
from crm_profile.privacy.data_subject import rules
from crm_profile.privacy.data_subject.eraser import CustomerEraser
from crm_profile.privacy.data_subject.model import ErasureSpec
from crm_profile.privacy.data_subject.repository import ErasureRepository
from crm_profile.privacy.data_subject.service import CUSTOMER_TYPE, RELATIONSHIP_TYPE
from crm_profile.privacy.retention import rules as retention_rules
from crm_profile.privacy.retention.model import (
    PolicyChanges,
    PurgeClassResult,
    PurgeResult,
    RetentionAction,
    RetentionAnchor,
    RetentionPolicy,
)
from crm_profile.privacy.retention.repository import RetentionRepository
from crm_profile.tables import audit_record, operation
from crmkit.audit import AuditEntry
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation, Started, name_of, parse_name
from crmkit.outbox import ChangeFeed, ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

log = get_logger("crm.profile.retention")

KIND = "profile.retention_purge"
SCHEDULER = "system:retention-purge"
_START_LOCK_KEY = 0x43524D505247  # "CRMPRG": one purge starts at a time
EVENT_BATCH = 5000
AUDIT_BATCH = 5000
CUSTOMER_BATCH = 50
# The scheduler's purges carry no request_id, so no request is fingerprinted.
_NO_REQUEST = empty_pb2.Empty()


@dataclass(frozen=True)
class PurgeMessages:
    """The operation's metadata and result as protos, and the feed payload of a changed customer;
    supplied by the API layer."""

    metadata: Callable[[Sequence[DataClass], bool], Message]
    result: Callable[[PurgeResult], Message]
    customer: Callable[[Customer], Message]


@dataclass
class _Tally:
    deleted: int = 0
    anonymised: int = 0


class Retention:
    def __init__(
        self, *, db: Database, repository: RetentionRepository, erasure: ErasureRepository, eraser: CustomerEraser,
        customers: CustomerRepository, operations: Operations, runner: OperationRunner, idempotency: IdempotencyKeys,
        outbox: Outbox, feed: ChangeFeed, feed_retention: timedelta, page_tokens: PageTokens,
        messages: PurgeMessages, partitions_dropped: Callable[[], None], schedule_every: timedelta | None,
    ) -> None:
        self._db = db
        self._repository = repository
        self._erasure = erasure
        self._eraser = eraser
        self._customers = customers
        self._operations = operations
        self._runner = runner
        self._idempotency = idempotency
        self._outbox = outbox
        self._feed = feed
        self._feed_retention = feed_retention
        self._page_tokens = page_tokens
        self._messages = messages
        self._partitions_dropped = partitions_dropped
        self._schedule_every = schedule_every
        self._scheduler: asyncio.Task[None] | None = None

    # --- policies --------------------------------------------------------------------------------

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str) -> Page[RetentionPolicy]:
        limit = clamp_page_size(page_size)
        after = self._page_tokens.decode(page_token, query={"list": "retention_policies"})
        found = await self._repository.page(uow, after=after, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=lambda p: int(p.data_class),
                                      query={"list": "retention_policies"})

    async def update(self, *, uow: UnitOfWork, slug: str, changes: PolicyChanges, paths: Sequence[str], etag: str,
                     actor: Principal) -> RetentionPolicy:
        retention_rules.check_mask(paths)
        data_class = retention_rules.class_of(slug)
        current = await load_for_update(
            self._repository.get(uow, data_class, for_update=True), etag=etag,
            not_found=lambda: NotFound(f"retention policy {slug} not found", reason="RETENTION_POLICY_NOT_FOUND"))
        wanted = retention_rules.updated(current, changes, paths)
        if wanted == current:
            return current  # a retry, or nothing to change: no new version
        stored = await self._repository.update(uow, wanted)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="retention_policy.update", resource_name=stored.name,
            purpose="DATA_MANAGEMENT", justification=f"fields={','.join(sorted(paths))}")])
        return stored

    # --- starting a purge ------------------------------------------------------------------------

    async def start_purge(self, *, uow: UnitOfWork, data_classes: Sequence[int], validate_only: bool,
                          request_id: uuid.UUID | None, request: Message, actor: Principal,
                          violations: Violations | None = None) -> Started:
        """Create the purge operation in `uow`; the caller launches it once `uow` has committed."""
        violations = violations if violations is not None else Violations()
        covered = retention_rules.check_purge_classes(data_classes, violations)
        violations.raise_if_any()
        started = await self._create(uow=uow, classes=covered, everything=not data_classes,
                                     validate_only=validate_only, request_id=request_id, request=request,
                                     creator=actor.subject)
        assert started is not None
        return started

    async def _create(self, *, uow: UnitOfWork, classes: Sequence[DataClass], everything: bool, validate_only: bool,
                      request_id: uuid.UUID | None, request: Message, creator: str,
                      unless_since: datetime | None = None) -> Started | None:
        operation_id = uuid.uuid4()
        await uow.execute(sa.select(sa.func.pg_advisory_xact_lock(_START_LOCK_KEY)))
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=creator, request_id=request_id, request=request, method="RunRetentionPurge",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        if unless_since is not None and await _started_since(uow, unless_since):
            return None  # another replica's scheduler (or a person) ran it already
        running = await uow.scalar(sa.select(operation.c.operation_id).where(
            operation.c.kind == KIND, operation.c.state.in_([1, 2])).limit(1))
        if running is not None:
            raise FailedPrecondition(f"a retention purge is already running: {name_of(running)}",
                                     reason="PURGE_IN_PROGRESS", metadata={"operation": name_of(running)})
        created = await self._operations.create(uow, kind=KIND, creator=creator, operation_id=operation_id,
                                                metadata=self._messages.metadata(classes, validate_only))
        return Started(created, functools.partial(self._runner.launch, operation_id, functools.partial(
            self._run, tuple(classes), everything, validate_only, creator)))

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    def start_schedule(self) -> None:
        """Run the purge once per `schedule_every` (the first time one period after start-up)."""
        if self._schedule_every is not None:
            self._scheduler = asyncio.create_task(self._scheduled(), name="retention-schedule")

    async def stop_schedule(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)

    async def _scheduled(self) -> None:
        assert self._schedule_every is not None
        while True:
            await asyncio.sleep(self._schedule_every.total_seconds())
            try:
                async with self._db.unit_of_work() as uow:
                    started = await self._create(uow=uow, classes=rules.PERSONAL_CLASSES, everything=True,
                                                 validate_only=False, request_id=None, request=_NO_REQUEST,
                                                 creator=SCHEDULER,
                                                 unless_since=datetime.now(UTC) - self._schedule_every)
                if started is not None:
                    started.launch()
            except FailedPrecondition:
                pass  # one is running already
            except Exception as exc:  # the database may be briefly unreachable: try next time
                log.warning("retention_schedule_failed", error_type=type(exc).__name__)

    # --- the purge -------------------------------------------------------------------------------

    async def _run(self, classes: tuple[DataClass, ...], everything: bool, validate_only: bool, actor: str,
                   run: RunningOperation) -> Message:
        now = datetime.now(UTC)
        async with self._db.unit_of_work(read_only=True) as uow:
            policies = await self._repository.policies(uow)
        tallies = {c: _Tally() for c in classes}
        origin = name_of(run.operation_id)
        by_record_time = [c for c in classes if c in rules.EVENT_CLASSES
                          and policies[c].anchor == RetentionAnchor.RECORD_TIME]
        await self._purge_events(run, by_record_time, policies, now, tallies, validate_only)
        if DataClass.AUDIT in classes:
            await self._purge_audit(run, policies[DataClass.AUDIT], now, tallies[DataClass.AUDIT], validate_only)
        by_relationship = [c for c in classes if c != DataClass.AUDIT and c not in by_record_time]
        await self._purge_customers(run, by_relationship, policies, now, tallies, validate_only, actor, origin)
        if everything and not validate_only:
            purged = await self._feed.purge(retention=self._feed_retention)
            log.info("feed_purged", events=purged)
        if not validate_only:
            async with self._db.unit_of_work() as uow:
                await self._repository.mark_purged(uow, classes)
        result = PurgeResult(tuple(
            PurgeClassResult(c, retention_rules.cutoff(policies[c], now), t.deleted, t.anonymised)
            for c, t in tallies.items()), validate_only)
        return self._messages.result(result)

    async def _purge_events(self, run: RunningOperation, classes: Sequence[DataClass],
                            policies: dict[DataClass, RetentionPolicy], now: datetime, tallies: dict[DataClass, _Tally],
                            validate_only: bool) -> None:
        if not classes:
            return
        await run.progress(stage="events")
        deleting = [c for c in classes if policies[c].action == RetentionAction.DELETE]
        if validate_only:
            async with self._db.unit_of_work(read_only=True) as uow:
                for c in classes:
                    before = retention_rules.cutoff(policies[c], now)
                    count = await self._repository.count_events(
                        uow, [c], before=before, anonymised=c not in deleting)
                    if c in deleting:
                        tallies[c].deleted += count
                    else:
                        tallies[c].anonymised += count
            return
        if deleting:
            before = min(retention_rules.cutoff(policies[c], now) for c in deleting)
            async with self._db.unit_of_work(read_only=True) as uow:
                months = retention_rules.due_months(await self._repository.event_months(uow), before)
            dropped = False
            for month in months:
                async with self._db.unit_of_work() as uow:
                    if len(deleting) > 1:  # counted per class before the partition goes
                        counts = {c: await self._repository.count_events(
                            uow, [c], before=retention_rules.month_end(month)) for c in deleting}
                    size = await self._repository.drop_month(uow, month, deleting)
                if size is not None:
                    dropped = True
                    if len(deleting) == 1:
                        tallies[deleting[0]].deleted += size
                    else:
                        for c in deleting:
                            tallies[c].deleted += counts[c]  # partitions are dropped oldest first
                    await run.progress(done=size)
            if dropped:
                self._partitions_dropped()
        for c in classes:
            before = retention_rules.cutoff(policies[c], now)
            step = self._repository.delete_events if c in deleting else self._repository.anonymise_events
            while True:
                async with self._db.unit_of_work() as uow:
                    count = await step(uow, [c], before=before, limit=EVENT_BATCH)
                if not count:
                    break
                if c in deleting:
                    tallies[c].deleted += count
                else:
                    tallies[c].anonymised += count
                await run.progress(done=count)

    async def _purge_audit(self, run: RunningOperation, policy: RetentionPolicy, now: datetime, tally: _Tally,
                           validate_only: bool) -> None:
        await run.progress(stage="audit")
        async with self._db.unit_of_work(read_only=True) as uow:
            through = await self._repository.audit_due(uow, before=retention_rules.cutoff(policy, now))
            if not through:
                return
            if validate_only:
                tally.deleted += await self._repository.count_audit(uow, through)
                return
        after = 0
        while after < max(through.values()):
            async with self._db.unit_of_work() as uow:
                count, after = await self._repository.purge_audit(uow, through, after=after, limit=AUDIT_BATCH)
            tally.deleted += count
            if count:
                await run.progress(done=count)

    async def _purge_customers(self, run: RunningOperation, classes: Sequence[DataClass],
                               policies: dict[DataClass, RetentionPolicy], now: datetime,
                               tallies: dict[DataClass, _Tally], validate_only: bool, actor: str, origin: str) -> None:
        if not classes:
            return
        await run.progress(stage="customers")
        cutoffs = {c: retention_rules.cutoff_date(policies[c], now) for c in classes}
        after = ""
        while True:
            async with self._db.unit_of_work(read_only=True) as uow:
                batch = await self._repository.closed_customers(uow, closed_before=max(cutoffs.values()),
                                                                after=after, limit=CUSTOMER_BATCH)
            if not batch:
                return
            done = 0
            for customer_id, closed_on in batch:
                due = [c for c in classes if closed_on < cutoffs[c]]
                done += await self._purge_customer(customer_id, closed_on, due, policies, tallies, validate_only,
                                                   actor, origin)
            after = batch[-1][0]
            await run.progress(done=done)

    async def _purge_customer(self, customer_id: str, closed_on: date, due: Sequence[DataClass],
                              policies: dict[DataClass, RetentionPolicy], tallies: dict[DataClass, _Tally],
                              validate_only: bool, actor: str, origin: str) -> int:
        """One closed customer through the erasure path for its due classes; records touched."""
        writing = not validate_only
        async with self._db.unit_of_work(read_only=not writing) as uow:
            current = await self._customers.get(uow, customer_id, for_update=writing)
            if current is None or current.closed_on != closed_on:
                return 0  # changed meanwhile: the next run sees it as it is then
            tree = [current] + await self._sources(uow, customer_id, lock=writing)
            ids = [c.customer_id for c in tree]
            if await self._erasure.open_holdings(uow, ids):
                return 0
            spec = retention_rules.purge_spec(due, policies, erased=current.state == ERASED)
            attribute_classes = await self._erasure.attribute_classes(uow)
            inventory = await self._erasure.inventory(uow, ids, attribute_classes)
            touched = {c: inventory.counts.get(c, 0) for c in due if _touches(c, spec)}
            if not any(touched.values()):
                return 0
            for data_class, count in touched.items():
                if not count:
                    continue
                anonymised = data_class in rules.CUSTOMER_CLASSES or data_class in spec.anonymise_events
                if anonymised:
                    tallies[data_class].anonymised += 1 if data_class in rules.CUSTOMER_CLASSES else count
                else:
                    tallies[data_class].deleted += count
            if validate_only:
                return sum(touched.values())
            today = (await self._erasure.now(uow)).date()
            erased = await self._eraser.erase(uow=uow, customers=tree, spec=spec, attribute_classes=attribute_classes,
                                              actor=actor, source=ChangeSource.RETENTION, today=today)
            await append_audit(uow, audit_record, [AuditEntry(
                principal=actor, action="customer.erase", resource_name=f"customers/{i}", purpose="DATA_MANAGEMENT",
                justification=f"retention purge {origin}: {','.join(c.name.lower() for c in due)}")
                for i in erased.customer_ids])
            await self._outbox.append_many(
                uow, [(r.name, ChangeType.CHANGE_TYPE_DELETED, None) for r in erased.relationships],
                actor=actor, resource_type=RELATIONSHIP_TYPE)
            if spec.tombstone:
                await self._outbox.append_many(uow, [(f"customers/{i}", ChangeType.CHANGE_TYPE_DELETED, None)
                                                         for i in erased.customer_ids],
                                               actor=actor, resource_type=CUSTOMER_TYPE)
            elif spec.erase & rules.RECORD_CLASSES:
                changed = await self._customers.get(uow, customer_id)
                assert changed is not None
                await self._outbox.append(uow, resource_name=changed.name,
                                          change_type=ChangeType.CHANGE_TYPE_UPDATED,
                                          payload=self._messages.customer(changed), actor=actor)
        return sum(touched.values())

    async def _sources(self, uow: UnitOfWork, customer_id: str, *, lock: bool) -> builtins.list[Customer]:
        merged = []
        for source_id in (await self._erasure.merge_tree(uow, customer_id))[1:]:
            source = await self._customers.get(uow, source_id, for_update=lock)
            if source is not None:
                merged.append(source)
        return merged


def _touches(data_class: DataClass, spec: ErasureSpec) -> bool:
    return data_class in spec.erase or data_class in spec.anonymise_events or data_class in spec.delete_events


async def _started_since(uow: UnitOfWork, since: datetime) -> bool:
    return await uow.scalar(sa.select(sa.exists().where(
        operation.c.kind == KIND, operation.c.create_time >= since))) or False

