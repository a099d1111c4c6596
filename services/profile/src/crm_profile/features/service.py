"""Derived-feature orchestration: reading a customer's features, keeping them current, and the
batch recomputation.

Three ways features are recomputed, all through `FeatureWriter.recompute` (one set-wise
statement per batch of customers, see `repository`), each in the transaction that writes them,
with a `crm.profile.v1.CustomerFeatures` change event per customer whose features changed
materially (`rules`): CREATED the first time, UPDATED after, DELETED when the customer stops
being active (merged, erased). The payload is the `CustomerFeatures` message.

1. **In the transaction of the change**, for holdings: `Holdings` calls `recompute` for the
   customer at the end of every create, update and delete, so a read after the write sees the
   new AUM, product counts and maturity.
2. **Marked in the transaction of the change, recomputed within a second**, for events: each
   ingest batch adds one row listing its customers to `customer_feature_mark`, in the same
   transaction and round trip as its events (about 1 ms for a batch of a thousand); the
   `FeatureRefresher` takes the oldest marks, recomputes up to a batch of their customers in one
   statement and one transaction, and puts the rest back at the head of the queue. Why not
   recompute in the ingest transaction itself: the recomputation reads each customer's year of
   events (about 1 s for a thousand customers here, against an ingest budget of 50 ms per batch
   of a thousand events at 20,000 events/s); and a customer sending ten events a second is
   recomputed once instead of ten times, with one change on the feed instead of ten. A mark
   commits with its events, so none is lost; the refresher deletes and recomputes in one
   transaction, so a crash leaves the marks. Under a flood of events the refresher stays busy at
   most a quarter of the time, so features lag rather than ingest slowing down.
   Other writers whose changes move features call `FeatureWriter.mark(session, customer_ids)` in
   their transaction: customer updates of `rules.CUSTOMER_INPUTS`, merges and unmerges (both
   customers). Bulk imports do not (a million marks would only queue work the daily batch run
   does anyway): imported customers get their features from the next batch run, or on the spot
   when read before it.
3. **In batch**, `RecomputeFeatures`: a long-running operation (`profile.recompute_features`)
   whose worker process pages through the customers in id order, one transaction per batch, and
   reports progress per batch. Batches done stay done when it is cancelled or fails. Run daily
   (a scheduled job) it moves the windows on: counts of the last 30 or 90 days, recency, tenure.

Concurrency: every recomputation first locks its customers' rows in id order (the holdings
writes hold that lock already), so recomputations of one customer never interleave and none
overwrites a newer result with an older one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import operation_pb2
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import ERASED, MERGED
from crm_profile.features import rules
from crm_profile.features.model import CREATED, DELETED, UPDATED, Change, CustomerFeatures, RecomputeOutcome
from crm_profile.features.repository import FeatureRepository
from crm_profile.holdings import rules as holding_rules
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.db import Database
from crmkit.errors import NotFound
from crmkit.idempotency import IdempotencyKeys, current_request, parse_request_id
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation
from crmkit.outbox import ChangeType, Outbox
from crmkit.resources import Purpose
from crmkit.validation import Violations

log = get_logger("crm.profile.features")

KIND = "profile.recompute_features"
FEATURES_TYPE = "crm.profile.v1.CustomerFeatures"
REFRESHER = "system:features"
# The largest share of its time the refresher spends recomputing while marks keep coming.
BUSY_SHARE = 0.25
_CHANGE_TYPES = {CREATED: ChangeType.CHANGE_TYPE_CREATED, UPDATED: ChangeType.CHANGE_TYPE_UPDATED}

# Made by the API layer, so this module stays free of generated protos.
FeaturePayload = Callable[[CustomerFeatures], Message]
# Operation.metadata of a run: the customers' names and `changed_since` as the request had them.
Describe = Callable[[Sequence[str], datetime | None], Message]
# Operation.response of a finished run.
Result = Callable[[RecomputeOutcome], Message]


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    reporting_currency: str = "CNY"
    # Units of the reporting currency per unit of another (the holdings' reference rates).
    rates: Mapping[str, Decimal] = dataclasses.field(default_factory=dict)
    rfm_window_days: int = rules.DEFAULT_WINDOW_DAYS
    # Customers per statement (and per transaction) of the refresher and the batch run.
    batch_size: int = 1000
    refresh_seconds: float = 1.0

    def __post_init__(self) -> None:
        holding_rules.check_rates(self.reporting_currency, self.rates)
        rules.check_window(self.rfm_window_days)

    @functools.cached_property
    def currency(self) -> rules.Currency:
        return rules.Currency.of(self.reporting_currency, self.rates)

    def windows(self, now: datetime | None = None) -> rules.Windows:
        return rules.Windows.of(now or datetime.now(UTC), rfm_window_days=self.rfm_window_days)


class FeatureWriter:
    """Recomputes features inside the caller's transaction and publishes the material changes.
    Holds no connection: the batch worker process builds its own from the same parts."""

    def __init__(self, *, repository: FeatureRepository, outbox: Outbox, settings: FeatureSettings,
                 feed_payload: FeaturePayload) -> None:
        self._repository = repository
        self._outbox = outbox
        self.settings = settings
        self._feed_payload = feed_payload

    async def recompute(self, session: AsyncConnection, customer_ids: Sequence[str], *, actor: str,
                        locked: bool = False, now: datetime | None = None) -> RecomputeOutcome:
        """Recompute these customers (at most a batch; inactive ones lose their features), in the
        caller's transaction, with a change event for each material change. `locked`: the caller
        holds the customers' row locks already (it changed their holdings)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return RecomputeOutcome(0, 0)
        if not locked:
            await self._repository.lock(session, ids)
        changes = await self._repository.recompute(session, ids, windows=self.settings.windows(now),
                                                   currency=self.settings.currency)
        return await self.publish(session, changes, actor=actor)

    async def publish(self, session: AsyncConnection, changes: Sequence[Change], *, actor: str) -> RecomputeOutcome:
        upserts = [(f"customers/{c.customer_id}/features", _CHANGE_TYPES[c.published], self._feed_payload(c.features))
                   for c in changes if c.features is not None and c.published is not None]
        deletions = [(f"customers/{c.customer_id}/features", ChangeType.CHANGE_TYPE_DELETED, None)
                     for c in changes if c.published == DELETED]
        await self._outbox.append_many(session, upserts, actor=actor, resource_type=FEATURES_TYPE)
        await self._outbox.append_many(session, deletions, actor=actor, resource_type=FEATURES_TYPE)
        return RecomputeOutcome(customer_count=sum(1 for c in changes if c.features is not None),
                                changed_count=len(upserts) + len(deletions))

    async def mark(self, session: AsyncConnection, customer_ids: Sequence[str]) -> None:
        """Have the refresher recompute these customers once the caller's transaction commits."""
        await self._repository.mark(session, customer_ids)


class FeatureRefresher:
    """Recomputes the customers marked by event ingest (and other writers), a batch at a time."""

    def __init__(self, *, db: Database, writer: FeatureWriter, repository: FeatureRepository) -> None:
        self._db = db
        self._writer = writer
        self._repository = repository
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh_forever(), name="feature-refresher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def refresh(self) -> int:
        """One batch of marked customers, recomputed in one transaction; how many there were."""
        async with self._db.unit_of_work() as session:
            customer_ids = await self._repository.claim_marks(session, customers=self._writer.settings.batch_size)
            await self._writer.recompute(session, customer_ids, actor=REFRESHER)
        return len(customer_ids)

    async def _refresh_forever(self) -> None:
        settings = self._writer.settings
        while True:
            started = time.monotonic()
            try:
                full = await self.refresh() >= settings.batch_size
            except Exception as exc:  # the database may be briefly unreachable; the marks stay
                log.warning("feature_refresh_failed", error_type=type(exc).__name__)
                full = False
            # A full batch means more are waiting: go on soon, but stay busy at most BUSY_SHARE of
            # the time, so that a flood of events slows the features down rather than the ingest.
            busy = time.monotonic() - started
            rest = busy * (1 - BUSY_SHARE) / BUSY_SHARE
            await asyncio.sleep(rest if full else max(rest, settings.refresh_seconds))


@dataclasses.dataclass(frozen=True)
class RecomputeJob:
    """One batch run, as its worker process sees it (picklable values only)."""

    operation_id: uuid.UUID
    database_url: str
    customer_ids: tuple[str, ...]
    changed_since: datetime | None
    settings: FeatureSettings
    feed_payload: FeaturePayload
    actor: str


class Features:
    """The feature use cases. Methods are keyword-only and take the calling principal."""

    def __init__(
        self, *, db: Database, writer: FeatureWriter, repository: FeatureRepository, idempotency: IdempotencyKeys,
        audit: AuditWriter, operations: Operations, runner: OperationRunner, database_url: str,
        feed_payload: FeaturePayload, describe: Describe, result: Result,
    ) -> None:
        self._db = db
        self.writer = writer
        self._repository = repository
        self._idempotency = idempotency
        self._audit = audit
        self._operations = operations
        self._runner = runner
        self._database_url = database_url
        self._feed_payload = feed_payload
        self._describe = describe
        self._result = result

    async def get(self, *, customer_id: str, purpose: Purpose, actor: Principal) -> CustomerFeatures:
        """The stored features; for a customer never computed yet, computed now (and not stored)."""
        async with self._db.unit_of_work(read_only=True) as session:
            customer = await self._repository.customer(session, customer_id)
            if customer is None:
                raise NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")
            customer_rules.check_book(actor, customer)
            customer_rules.ensure_active(customer)
            features = await self._repository.get(session, customer_id)
            if features is None:
                settings = self.writer.settings
                (features,) = await self._repository.compute(session, [customer_id], windows=settings.windows(),
                                                             currency=settings.currency)
        await self._audit.record(AuditEntry(principal=actor.subject, action="features.read",
                                            resource_name=features.name, purpose=purpose.purpose,
                                            justification=purpose.justification))
        return features

    async def start_recompute(self, *, customers: Sequence[str], changed_since: datetime | None, request_id: str,
                              actor: Principal) -> operation_pb2.Operation:
        """Check the request, then start the run as an operation (idempotent for `request_id`)."""
        violations = Violations()
        customer_ids = rules.customer_ids_of(customers, violations)
        key = parse_request_id(request_id, violations=violations)
        rules.check_changed_since(changed_since, now=datetime.now(UTC), violations=violations)
        violations.raise_if_any()
        if customer_ids:
            await self._check_customers(customer_ids)
        operation_id = uuid.uuid4()
        async with self._db.unit_of_work() as session:
            earlier = await self._idempotency.claim(
                session, principal=actor.subject, request_id=key, request=current_request(), method="RecomputeFeatures",
                resource_name=f"operations/{operation_id}")
            if earlier is not None:
                return await self._operations.get(operation_id=uuid.UUID(earlier.removeprefix("operations/")))
            operation = await self._operations.create(session, kind=KIND, creator=actor.subject,
                                                      metadata=self._describe(customers, changed_since),
                                                      operation_id=operation_id)
        job = RecomputeJob(operation_id=operation_id, database_url=self._database_url,
                           customer_ids=tuple(customer_ids), changed_since=changed_since,
                           settings=self.writer.settings, feed_payload=self._feed_payload, actor=actor.subject)
        self._runner.launch(operation_id, functools.partial(self._run, job))
        log.info("features_recompute_started", operation_id=str(operation_id), customers=len(customer_ids),
                 changed_since=changed_since.isoformat() if changed_since else None)
        return operation

    async def _check_customers(self, customer_ids: Sequence[str]) -> None:
        """NOT_FOUND naming the first unknown customer; FAILED_PRECONDITION for a merged or erased one."""
        async with self._db.unit_of_work(read_only=True) as session:
            found = await self._repository.states(session, customer_ids)
        for i, customer_id in enumerate(customer_ids):
            customer = found.get(customer_id)
            if customer is None:
                raise NotFound(f"customers[{i}]: customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND",
                               metadata={"field": f"customers[{i}]", "customer": f"customers/{customer_id}"})
            if customer.state in (MERGED, ERASED):
                customer_rules.ensure_active(customer)

    async def _run(self, job: RecomputeJob, run: RunningOperation) -> Message:
        from crm_profile.features import worker  # the worker's imports are only needed here

        outcome = await run.call(worker.recompute_all, job)
        log.info("features_recomputed", operation_id=str(job.operation_id), customers=outcome.customer_count,
                 changed=outcome.changed_count)
        return self._result(outcome)
