"""Clustering use cases: start a run (an operation whose work runs in a worker process), read a
run and page through its clusters.

The start creates the run row and its PENDING operation in the RPC's unit of work (idempotent
for `request_id`); the coordinator hands the whole run to a worker (`worker.run_clustering`),
which completes the operation in the transaction that stores the outcome. The service's event
loop never reads the population or runs k-means.
"""

from __future__ import annotations

import functools
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from google.protobuf.message import Message

from crm_segment import analytics_jobs
from crm_segment.clusters import repository, rules, worker
from crm_segment.clusters.model import KIND, Cluster, ClusteringJob, ClusteringRun
from crm_segment.segments.repository import SegmentRepository
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import SUCCEEDED, OperationRunner, Operations, RunningOperation, Started, parse_name
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import ResourceName

log = get_logger("crm.segment.clusters")

RUN_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RUN_NAME = ResourceName("clusteringRuns/{run_id}", id_pattern=RUN_ID)

# The finished run -> the operation's response (the API layer's, a module-level function).
ResultMessage = Callable[[ClusteringRun], Any]


class Clustering:
    def __init__(self, *, db: Database, database_url: str, segments: SegmentRepository, operations: Operations,
                 runner: OperationRunner, idempotency: IdempotencyKeys, page_tokens: PageTokens,
                 result_message: ResultMessage, max_jobs: int) -> None:
        self._db = db
        self._database_url = database_url
        self._segments = segments
        self._operations = operations
        self._runner = runner
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._result_message = result_message
        self._max_jobs = max_jobs

    async def start(self, *, uow: UnitOfWork, display_name: str, features: Sequence[str], cluster_count: int,
                    min_cluster_count: int, max_cluster_count: int, missing_values: int, random_seed: int,
                    population_segment_id: str, request_id: uuid.UUID | None, request: Message,
                    actor: Principal) -> tuple[Started, str]:
        """Create the run and its PENDING `segment.clustering` operation in `uow`; the caller
        launches it once `uow` has committed. (started, the run's name)."""
        spec = rules.check_start(display_name=display_name, features=features, cluster_count=cluster_count,
                                 min_cluster_count=min_cluster_count, max_cluster_count=max_cluster_count,
                                 missing_values=missing_values, random_seed=random_seed,
                                 population_segment_id=population_segment_id)
        operation_id, run_id = uuid.uuid4(), uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="StartClustering",
            resource_name=RUN_NAME.format(str(run_id)), replay=self._earlier)
        if replayed is not None:
            return replayed
        await analytics_jobs.check_start(uow, segments=self._segments, population_segment_id=population_segment_id,
                                         limit=self._max_jobs)
        if spec.random_seed == 0:
            spec = replace(spec, random_seed=1 + secrets.randbelow(rules.MAX_RANDOM_SEED))
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=request,
                                                  operation_id=operation_id)
        await repository.insert_run(uow, run_id=run_id, operation_id=operation_id, spec=spec, creator=actor.subject)
        job = ClusteringJob(run_id=str(run_id), operation_id=str(operation_id), database_url=self._database_url,
                            spec=spec, result_message=self._result_message)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._run, job))
            log.info("clustering_started", run_id=str(run_id), operation_id=str(operation_id),
                     features=len(spec.features), cluster_count=spec.cluster_count)

        return Started(operation, launch), RUN_NAME.format(str(run_id))

    async def _earlier(self, name: str) -> tuple[Started, str]:
        run_id = uuid.UUID(RUN_NAME.parse_one(name))
        async with self._db.raw() as connection:
            run = await repository.get_run(connection, run_id)
        assert run is not None  # written with the idempotency key that named it
        return Started(await self._operations.get(operation_id=parse_name(f"operations/{run.operation_id}"))), name

    async def _run(self, job: ClusteringJob, run: RunningOperation) -> Message:
        response: Message = await run.call(worker.run_clustering, job)
        log.info("clustering_finished", run_id=job.run_id, operation_id=job.operation_id)
        return response

    async def get(self, *, run_id: str) -> ClusteringRun:
        async with self._db.raw() as connection:
            run = await repository.get_run(connection, uuid.UUID(run_id))
        if run is None:
            raise _not_found(run_id)
        return run

    async def list_clusters(self, *, run_id: str, page_size: int, page_token: str
                            ) -> tuple[ClusteringRun, Page[Cluster]]:
        limit = clamp_page_size(page_size)
        query = {"run": run_id}
        after = self._page_tokens.decode(page_token, query=query)
        async with self._db.raw() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            run = await repository.get_run(connection, uuid.UUID(run_id))
            if run is None:
                raise _not_found(run_id)
            if run.state != SUCCEEDED:
                raise FailedPrecondition(f"clustering run {run_id} has not succeeded: it has no clusters",
                                         reason="RUN_NOT_SUCCEEDED", metadata={"run_id": run_id})
            found = await repository.clusters_page(connection, run, after=after, limit=limit + 1)
        return run, self._page_tokens.page(found, limit=limit, key=lambda c: c.cluster_id, query=query)


def _not_found(run_id: str) -> NotFound:
    return NotFound(f"clustering run {run_id} not found", reason="CLUSTERING_RUN_NOT_FOUND",
                    metadata={"run_id": run_id})
