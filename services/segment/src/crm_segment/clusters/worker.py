"""A clustering run, in a worker process (spawned; see crmkit.operations): read the population's
values, cluster them (`rules.cluster`, CPU-bound), and store the outcome, its clusters and every
customer's assignment in the transaction that completes the operation, so the run is complete
or absent. Progress and the cancel flag go through a second connection.

Who opens the transaction (crmkit.db's rule, for work no RPC starts): this worker, one read-only
snapshot for the read and one transaction for the outcome.
"""

from __future__ import annotations

import uuid

import asyncpg
from google.protobuf.message import Message

from crm_segment.clusters import repository, rules
from crm_segment.clusters.model import ClusteringJob
from crm_segment.membership import repository as membership_repository
from crmkit.operations import OperationCancelled, WorkerOperation, complete_in
from crmkit.settings import plain_database_url

_APPLICATION = "crm-segment-clustering"


async def run_clustering(job: ClusteringJob) -> Message:
    """Compute and store the run; the operation's response (the finished run)."""
    url = plain_database_url(job.database_url)
    run_id, operation_id = uuid.UUID(job.run_id), uuid.UUID(job.operation_id)
    connection = await asyncpg.connect(url, server_settings={"application_name": _APPLICATION})
    reporter = await asyncpg.connect(url, server_settings={"application_name": _APPLICATION})
    progress = WorkerOperation(reporter, operation_id)
    try:
        await _advance(progress, stage="reading")
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            customer_ids, values = await repository.population_values(connection, job.spec)
            as_of = await membership_repository.features_as_of(connection)
        await _advance(progress, stage="clustering", total=len(customer_ids))
        result = rules.cluster(rules.request_of(job.spec, customer_ids, values))
        await _advance(progress, stage="storing")
        clusters = rules.stored_clusters(result)
        async with connection.transaction():
            await repository.record_outcome(connection, run_id, result, customer_ids, as_of, clusters)
            await _advance(progress, done=len(customer_ids))
            run = await repository.get_run(connection, run_id)
            assert run is not None
            response: Message = job.result_message(run)
            await complete_in(connection, operation_id, response)
    finally:
        await reporter.close()
        await connection.close()
    return response


async def _advance(progress: WorkerOperation, *, done: int = 0, total: int | None = None,
                   stage: str | None = None) -> None:
    if (await progress.advance(done=done, total=total, stage=stage)).cancel_requested:
        raise OperationCancelled()

