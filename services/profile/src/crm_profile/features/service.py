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
import functools
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message

from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import ERASED, MERGED
from crm_profile.features import rules, worker
from crm_profile.features.model import CustomerFeatures, RecomputeOutcome
from crm_profile.features.repository import FeatureRepository
from crm_profile.features.writer import FeaturePayload, FeatureSettings, FeatureWriter, RecomputeJob
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation, Started, name_of, parse_name
from crmkit.resources import Purpose
from crmkit.validation import Violations

# The wiring builds these from here as well (one import for the feature parts).
__all__ = ["FeatureRefresher", "FeatureSettings", "FeatureWriter", "Features"]

log = get_logger("crm.profile.features")

KIND = "profile.recompute_features"
REFRESHER = "system:features"
# The largest share of its time the refresher spends recomputing while marks keep coming.
BUSY_SHARE = 0.25

# Operation.metadata of a run: the customers' names and `changed_since` as the request had them.
Describe = Callable[[Sequence[str], datetime | None], Message]
# Operation.response of a finished run.
Result = Callable[[RecomputeOutcome], Message]


class FeatureRefresher:
    """Recomputes the customers marked by event ingest (and other writers), a batch at a time.

    Background work no RPC starts, so it opens its own unit of work (crmkit.db's rule): one per
    batch, in which the marks are taken and the customers recomputed and published, committed
    together (a failed batch leaves its marks)."""

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
        """One batch of marked customers, recomputed in one unit of work; how many there were."""
        async with self._db.unit_of_work() as uow:
            customer_ids = await self._repository.claim_marks(uow, customers=self._writer.settings.batch_size)
            await self._writer.recompute(uow=uow, customer_ids=customer_ids, actor=REFRESHER)
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


class Features:
    """The feature use cases. Methods are keyword-only, take the caller's unit of work first
    (crmkit.db's rule: the servicer opens it, nothing here opens or commits) and the calling
    principal."""

    def __init__(
        self, *, writer: FeatureWriter, repository: FeatureRepository, idempotency: IdempotencyKeys,
        audit: AuditWriter, operations: Operations, runner: OperationRunner, database_url: str,
        feed_payload: FeaturePayload, describe: Describe, result: Result,
    ) -> None:
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

    async def get(self, *, uow: UnitOfWork, customer_id: str, purpose: Purpose, actor: Principal
                  ) -> CustomerFeatures:
        """The stored features; for a customer never computed yet, computed now (and not stored)."""
        customer = await self._repository.customer(uow, customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")
        customer_rules.check_book(actor, customer)
        customer_rules.ensure_active(customer)
        features = await self._repository.get(uow, customer_id)
        if features is None:
            settings = self.writer.settings
            (features,) = await self._repository.compute(uow, [customer_id], windows=settings.windows(),
                                                         currency=settings.currency)
        await self._audit.record(AuditEntry(principal=actor.subject, action="features.read",
                                            resource_name=features.name, purpose=purpose.purpose,
                                            justification=purpose.justification))
        return features

    async def start_recompute(self, *, uow: UnitOfWork, customers: Sequence[str], changed_since: datetime | None,
                              request_id: uuid.UUID | None, request: Message, actor: Principal,
                              violations: Violations | None = None) -> Started:
        """Check the request, then create the run's operation in `uow` (idempotent for
        `request_id`); the caller launches it once `uow` has committed."""
        v = violations if violations is not None else Violations()
        customer_ids = rules.customer_ids_of(customers, v)
        rules.check_changed_since(changed_since, now=datetime.now(UTC), violations=v)
        v.raise_if_any()
        if customer_ids:
            await self._check_customers(uow=uow, customer_ids=customer_ids)
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="RecomputeFeatures",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject,
                                                  metadata=self._describe(customers, changed_since),
                                                  operation_id=operation_id)
        job = RecomputeJob(operation_id=operation_id, database_url=self._database_url,
                           customer_ids=tuple(customer_ids), changed_since=changed_since,
                           settings=self.writer.settings, feed_payload=self._feed_payload, actor=actor.subject)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._run, job))
            log.info("features_recompute_started", operation_id=str(operation_id), customers=len(customer_ids),
                     changed_since=changed_since.isoformat() if changed_since else None)

        return Started(operation, launch)

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _check_customers(self, *, uow: UnitOfWork, customer_ids: Sequence[str]) -> None:
        """NOT_FOUND naming the first unknown customer; FAILED_PRECONDITION for a merged or erased one."""
        found = await self._repository.states(uow, customer_ids)
        for i, customer_id in enumerate(customer_ids):
            customer = found.get(customer_id)
            if customer is None:
                raise NotFound(f"customers[{i}]: customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND",
                               metadata={"field": f"customers[{i}]", "customer": f"customers/{customer_id}"})
            if customer.state in (MERGED, ERASED):
                customer_rules.ensure_active(customer)

    async def _run(self, job: RecomputeJob, run: RunningOperation) -> Message:
        outcome = await run.call(worker.recompute_all, job)
        log.info("features_recomputed", operation_id=str(job.operation_id), customers=outcome.customer_count,
                 changed=outcome.changed_count)
        return self._result(outcome)
