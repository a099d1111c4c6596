"""Cross-sell use cases: start mining association rules (an operation whose work runs in a
worker process), and page through a run's rules. As for clustering, the start creates the run
and its PENDING operation in the RPC's unit of work and the worker completes the operation in
the transaction that stores the rules."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import Message

from crm_segment import analytics_jobs
from crm_segment.crosssell import repository, rules, worker
from crm_segment.crosssell.model import KIND, AssociationRun, MiningJob, StoredRule
from crm_segment.segments.repository import SegmentRepository
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import SUCCEEDED, OperationRunner, Operations, RunningOperation, Started, parse_name
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import ResourceName

log = get_logger("crm.segment.crosssell")

RUN_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RUN_NAME = ResourceName("associationRuns/{run_id}", id_pattern=RUN_ID)
LATEST = "latest"
# A run's name or the alias of the newest succeeded run.
RUN_OR_LATEST = ResourceName("associationRuns/{run_id}", id_pattern=f"{RUN_ID}|{LATEST}")

ResultMessage = Callable[[AssociationRun], Any]


class CrossSell:
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

    async def start(self, *, uow: UnitOfWork, min_support: float, min_confidence: float, min_lift: float,
                    max_rule_size: int, max_rules: int, population_segment_id: str, request_id: uuid.UUID | None,
                    request: Message, actor: Principal) -> tuple[Started, str]:
        """Create the run and its PENDING `segment.association` operation in `uow`; the caller
        launches it once `uow` has committed. (started, the run's name)."""
        spec = rules.check_start(min_support=min_support, min_confidence=min_confidence, min_lift=min_lift,
                                 max_rule_size=max_rule_size, max_rules=max_rules,
                                 population_segment_id=population_segment_id)
        operation_id, run_id = uuid.uuid4(), uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="MineAssociationRules",
            resource_name=RUN_NAME.format(str(run_id)), replay=self._earlier)
        if replayed is not None:
            return replayed
        await analytics_jobs.check_start(uow, segments=self._segments, population_segment_id=population_segment_id,
                                         limit=self._max_jobs)
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=request,
                                                  operation_id=operation_id)
        await repository.insert_run(uow, run_id=run_id, operation_id=operation_id, spec=spec, creator=actor.subject)
        job = MiningJob(run_id=str(run_id), operation_id=str(operation_id), database_url=self._database_url,
                        spec=spec, result_message=self._result_message)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._run, job))
            log.info("association_mining_started", run_id=str(run_id), operation_id=str(operation_id))

        return Started(operation, launch), RUN_NAME.format(str(run_id))

    async def _earlier(self, name: str) -> tuple[Started, str]:
        async with self._db.raw() as connection:
            run = await repository.get_run(connection, uuid.UUID(RUN_NAME.parse_one(name)))
        assert run is not None  # written with the idempotency key that named it
        return Started(await self._operations.get(operation_id=parse_name(f"operations/{run.operation_id}"))), name

    async def _run(self, job: MiningJob, run: RunningOperation) -> Message:
        response: Message = await run.call(worker.mine_rules, job)
        log.info("association_mining_finished", run_id=job.run_id, operation_id=job.operation_id)
        return response

    async def list_rules(self, *, run_id: str, held_items: Sequence[str], consequent_item: str, min_lift: float,
                         min_confidence: float, order: int, page_size: int, page_token: str
                         ) -> tuple[AssociationRun, Page[StoredRule]]:
        """A page of a run's (or the latest succeeded run's) rules, filtered and ordered."""
        where = rules.check_filter(held_items=held_items, consequent_item=consequent_item, min_lift=min_lift,
                                   min_confidence=min_confidence, order=order)
        limit = clamp_page_size(page_size)
        async with self._db.raw() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            if run_id == LATEST:
                run = await repository.latest_run(connection)
                if run is None:
                    raise NotFound("no association run has succeeded yet", reason="ASSOCIATION_RUN_NOT_FOUND",
                                   metadata={"run_id": LATEST})
            else:
                run = await repository.get_run(connection, uuid.UUID(run_id))
                if run is None:
                    raise NotFound(f"association run {run_id} not found", reason="ASSOCIATION_RUN_NOT_FOUND",
                                   metadata={"run_id": run_id})
                if run.state != SUCCEEDED:
                    raise FailedPrecondition(f"association run {run_id} has not succeeded: it has no rules",
                                             reason="RUN_NOT_SUCCEEDED", metadata={"run_id": run_id})
            # The token is bound to the resolved run: `latest` moving on cannot mix two runs' pages.
            query = {"run": run.run_id, "held": sorted(where.held_items), "consequent": where.consequent_item,
                     "lift": where.min_lift, "confidence": where.min_confidence, "order": int(where.order)}
            after = self._page_tokens.decode(page_token, query=query)
            found = await repository.rules_page(connection, uuid.UUID(run.run_id), where,
                                                after=(float(after[0]), int(after[1])) if after else None,
                                                limit=limit + 1)
        measure = {1: "lift", 2: "confidence", 3: "support"}[int(where.order)]
        return run, self._page_tokens.page(found, limit=limit, key=lambda r: [getattr(r.rule, measure), r.rule_id],
                                           query=query)
