"""The batch recomputation, run in a worker process (spawned; see crmkit.operations).

One connection holds the run's scope (a temporary table when the run is restricted to named
customers or to changes since a time) and pages through it in customer id order; each page is
recomputed, published and committed in its own transaction, then counted in the operation's
progress, where the cancel flag is read. Pages done stay done when the run stops. A page that
deadlocks with a concurrent writer (a merge locking two customers) is retried.

Who opens the transaction (crmkit.db's rule, for work no RPC starts): this worker, one unit of
work per page (and one each for preparing the scope, dropping inactive customers' features and
closing the scope) on its own engine's connection, committed as each block ends; the writer it
hands `uow=` never commits. Progress is reported on a separate asyncpg connection (the kit's
operation machinery), so a page's rollback never undoes the progress of the pages before it.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile import tables
from crm_profile.features.model import RecomputeOutcome
from crm_profile.features.repository import FeatureRepository, Scope
from crm_profile.features.writer import FeatureWriter, RecomputeJob
from crmkit.db import create_engine
from crmkit.operations import OperationCancelled, WorkerOperation
from crmkit.outbox import Outbox
from crmkit.settings import plain_database_url

ATTEMPTS = 3
_RETRIED = {"40001", "40P01"}  # serialization failure, deadlock


async def recompute_all(job: RecomputeJob) -> RecomputeOutcome:
    repository = FeatureRepository()
    writer = FeatureWriter(repository=repository, outbox=Outbox(tables.outbox_event), settings=job.settings,
                           feed_payload=job.feed_payload)
    engine = create_engine(job.database_url, pool_size=1, application_name="crm-profile-features")
    reporter = await asyncpg.connect(plain_database_url(job.database_url),
                                     server_settings={"application_name": "crm-profile-features"})
    progress = WorkerOperation(reporter, job.operation_id)
    customers = changed = 0
    try:
        async with engine.connect() as connection:
            async with connection.begin():
                scope = await Scope.prepare(connection, customer_ids=job.customer_ids,
                                            changed_since=job.changed_since)
                total = await scope.total(connection)
            if (await progress.advance(total=total, stage="recomputing")).cancel_requested:
                raise OperationCancelled()
            after = ""
            while True:
                async with connection.begin():
                    page = await scope.page(connection, after=after, limit=job.settings.batch_size)
                if not page:
                    break
                outcome = await _recompute_page(connection, writer, page, actor=job.actor)
                customers += outcome.customer_count
                changed += outcome.changed_count
                after = page[-1]
                if (await progress.advance(done=len(page))).cancel_requested:
                    raise OperationCancelled()
            if not scope.restricted:
                async with connection.begin():
                    dropped = await repository.drop_all_inactive(connection)
                    changed += (await writer.publish(uow=connection, changes=dropped, actor=job.actor)).changed_count
            async with connection.begin():
                await scope.close(connection)
    finally:
        await reporter.close()
        await engine.dispose()
    return RecomputeOutcome(customer_count=customers, changed_count=changed)


async def _recompute_page(connection: AsyncConnection, writer: FeatureWriter, page: list[str], *,
                          actor: str) -> RecomputeOutcome:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with connection.begin():
                return await writer.recompute(uow=connection, customer_ids=page, actor=actor)
        except DBAPIError as exc:
            cause = getattr(exc, "orig", None)
            sqlstate = getattr(cause, "sqlstate", None) or getattr(getattr(cause, "__cause__", None), "sqlstate", None)
            if sqlstate not in _RETRIED or attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")
