"""Batch scoring as an operation (`risk.score`): every customer of the read model (or those named,
narrowed by manager or branch), in chunks scored in a spawned worker; unless a dry run, each
chunk is written back in one transaction of its own (current scores, decision audits, and a
`ChurnScore` change event for each score whose band changed or that moved by the step), so a
cancelled run keeps the chunks already written. One batch at a time (RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from google.protobuf import any_pb2
from google.protobuf.message import Message

from crm_risk.customers.repository import SCORING_COLUMNS, scoring_values
from crm_risk.customers.tables import customer as c
from crm_risk.decisions.model import Decision, DecisionType
from crm_risk.decisions.service import DecisionAudits
from crm_risk.registry.model import RegisteredModel, Status
from crm_risk.scoring import repository, rules, worker
from crm_risk.scoring.model import RiskBand, Score
from crm_risk.scoring.service import RESOURCE_TYPE, ScorePayload, Scoring
from crmkit.auth import Principal
from crmkit.clock import Clock
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition, ResourceExhausted
from crmkit.idempotency import IdempotencyKeys, parse_request_id
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation, Started, name_of, parse_name
from crmkit.outbox import FEED_COMMITTED, ChangeType, Outbox, current_trace_id
from crmkit.validation import Violations

log = get_logger("crm.risk.scoring")

KIND = "risk.score"
# Large enough that the model's per-call cost (a Python call per tree and fold) is spread thin.
CHUNK = 10_000

# The operation's result message, made by the API layer (no protos here).
ResultMessage = Callable[["BatchResult"], Message]


@dataclass(frozen=True)
class _Chunk:
    """Customers read and sent to the worker: its scores to come, their rows and inputs."""

    scored: asyncio.Future[Any]
    rows: Sequence[Any]
    inputs: dict[str, Any]


@dataclass(frozen=True)
class BatchRequest:
    customer_ids: tuple[str, ...]
    relationship_manager_id: str
    branch_id: str
    dry_run: bool


@dataclass
class BatchResult:
    model: RegisteredModel
    scored: int = 0
    failed: int = 0
    bands: dict[int, int] | None = None
    written_back: bool = False
    features_as_of: datetime | None = None


class BatchScoring:
    def __init__(self, *, db: Database, scoring: Scoring, operations: Operations, runner: OperationRunner,
                 decisions: DecisionAudits, outbox: Outbox, idempotency: IdempotencyKeys,
                 feed_payload: ScorePayload, result_message: ResultMessage, clock: Clock, chunk: int = CHUNK) -> None:
        self._db = db
        self._scoring = scoring
        self._operations = operations
        self._runner = runner
        self._decisions = decisions
        self._outbox = outbox
        self._idempotency = idempotency
        self._feed_payload = feed_payload
        self._result_message = result_message
        self._clock = clock
        self._chunk = chunk

    async def start(self, *, uow: UnitOfWork, customers: Sequence[str], model: str, relationship_manager_id: str,
                    branch_id: str, dry_run: bool, request_id: str, message: Message, actor: Principal) -> Started:
        v = Violations()
        rules.validate_batch(customers, model, v)
        key = parse_request_id(request_id, violations=v)
        v.raise_if_any()
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=key, request=message, method="ScoreCustomers",
            resource_name=name_of(operation_id),
            replay=lambda name: self._earlier(name))
        if replayed is not None:
            return replayed
        chosen = await self._scoring.model(uow, rules.CHURN_MODEL_NAME.parse_one(model, "model") if model else "")
        if not dry_run and chosen.status != Status.ACTIVE:
            raise FailedPrecondition(f"{chosen.name} is not the active model: score with dry_run to compare it",
                                     reason="MODEL_NOT_ACTIVE", metadata={"churn_model": chosen.name})
        await uow.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('crm_risk.batch_scoring'))"))
        running = await uow.scalar(sa.text("SELECT count(*) FROM operation WHERE kind = :kind AND state IN (1, 2)"),
                                   {"kind": KIND})
        if running:
            raise ResourceExhausted("another batch scoring is running: wait for it or cancel it",
                                    reason="BATCH_SCORING_RUNNING")
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=message,
                                                  operation_id=operation_id)
        request = BatchRequest(customer_ids=tuple(rules.CUSTOMER_NAME.parse_one(n, "customers") for n in customers),
                               relationship_manager_id=relationship_manager_id, branch_id=branch_id, dry_run=dry_run)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._run, operation_id, chosen, request,
                                                                actor.subject))

        return Started(operation, launch)

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _run(self, operation_id: uuid.UUID, model: RegisteredModel, request: BatchRequest, requester: str,
                   run: RunningOperation) -> Message:
        result = BatchResult(model=model, bands={b: 0 for b in RiskBand}, written_back=not request.dry_run)
        async with self._db.unit_of_work(read_only=True) as uow:
            artifact, sha256, encoding = await self._scoring.artifact(uow, model.churn_model_id)
            total = await uow.scalar(_selection(request, sa.select(sa.func.count()).select_from(c)))
        missing = len(request.customer_ids) - int(total or 0) if request.customer_ids else 0
        await run.progress(total=int(total or 0) + missing, failed=missing, stage="scoring")
        result.failed = missing
        # A pipeline of two chunks: while the worker scores one, this coroutine reads the next
        # and writes the previous one back (the worker's predictions are nearly all the work).
        names = [f.name for f in encoding.features]
        previous: _Chunk | None = None
        current: _Chunk | None = None
        after = ""
        try:
            while True:
                rows = await self._read(request, after)
                current = None
                if rows:
                    after = rows[-1].customer_id
                    inputs = {r.customer_id: scoring_values(r, self._clock().date()) for r in rows}
                    current = _Chunk(asyncio.ensure_future(run.call(worker.score_chunk, worker.ChunkJob(
                        artifact=artifact, artifact_sha256=sha256, encoding=encoding,
                        rows=tuple((r.customer_id, inputs[r.customer_id]) for r in rows)))), rows, inputs)
                if previous is not None:
                    await self._finish_chunk(previous, model=model, request=request, requester=requester,
                                             operation_id=operation_id, names=names, result=result, run=run)
                if current is None:
                    break
                previous = current
        finally:
            # A failure or a cancel leaves no scoring behind (a finished one ignores this).
            for chunk in (previous, current):
                if chunk is not None:
                    chunk.scored.cancel()
        log.info("batch_scoring_finished", operation_id=str(operation_id), scored=result.scored,
                 failed=result.failed, dry_run=request.dry_run)
        return self._result_message(result)

    async def _read(self, request: BatchRequest, after: str) -> Sequence[Any]:
        async with self._db.unit_of_work(read_only=True) as uow:
            return (await uow.execute(_selection(request, sa.select(
                c.c.customer_id, *SCORING_COLUMNS, c.c.relationship_manager_id, c.c.branch_id, c.c.data_as_of)
                .where(c.c.customer_id > after).order_by(c.c.customer_id).limit(self._chunk)))).all()

    async def _finish_chunk(self, chunk: _Chunk, *, model: RegisteredModel, request: BatchRequest, requester: str,
                            operation_id: uuid.UUID, names: list[str], result: BatchResult,
                            run: RunningOperation) -> None:
        scored = await chunk.scored
        now = self._clock()
        scores = [Score(customer_id=s.customer_id, churn_model_id=model.churn_model_id,
                        model_version=model.version, probability=s.probability,
                        risk_band=rules.band_of(s.probability, model.band_thresholds), drivers=s.drivers,
                        features_as_of=r.data_as_of, score_time=now, decision_audit="",
                        relationship_manager_id=r.relationship_manager_id, branch_id=r.branch_id)
                  for s, r in zip(scored, chunk.rows, strict=True)]
        if not request.dry_run:
            await self._write_back(model, scores, names=names, values=chunk.inputs, requester=requester,
                                   operation_id=operation_id, now=now)
        assert result.bands is not None
        for s in scores:
            result.bands[s.risk_band] += 1
            if s.features_as_of is not None and (result.features_as_of is None
                                                 or s.features_as_of < result.features_as_of):
                result.features_as_of = s.features_as_of
        result.scored += len(scores)
        # Also where a cancel request is seen: the chunks written so far stay.
        await run.progress(done=len(scores))

    async def _write_back(self, model: RegisteredModel, scores: list[Score], *, names: list[str],
                          values: dict[str, Any], requester: str, operation_id: uuid.UUID, now: datetime) -> None:
        """One chunk's decision audits, current scores and change events, in one transaction of its
        own: COPY-based bulk work on `Database.raw()` (crmkit.db's documented exception), which
        owns and commits its transaction here."""
        async with self._db.raw() as connection, connection.transaction():
            audits = await self._decisions.record_copy(connection=connection, decisions=[Decision(
                decision_type=DecisionType.CHURN_SCORE, customer_id=s.customer_id, decided_by=model.name,
                decider_version=str(model.version),
                outcome=f"band={s.risk_band.name} probability={s.probability:.4f}",
                reason_codes=tuple(d.feature for d in s.drivers),
                inputs=rules.numeric_inputs(names, values[s.customer_id]), context=name_of(operation_id))
                for s in scores], requester=requester, now=now)
            stored = [replace(s, decision_audit=audit) for s, audit in zip(scores, audits, strict=True)]
            await repository.prepare(connection)
            previous = await repository.lock_previous(connection, [s.customer_id for s in stored])
            await repository.copy_put_many(connection, stored)
            await repository.publish(connection, [
                (f"customers/{s.customer_id}", _packed(self._feed_payload(s))) for s in stored
                if rules.publishes(previous.get(s.customer_id), s)],
                resource_type=RESOURCE_TYPE, change_type=ChangeType.CHANGE_TYPE_UPDATED, actor=requester,
                trace_id=current_trace_id())
        FEED_COMMITTED.notify()


def _packed(payload: Message) -> bytes:
    packed = any_pb2.Any()
    packed.Pack(payload)
    return packed.SerializeToString()


def _selection(request: BatchRequest, query: Any) -> Any:
    query = query.where(~c.c.removed)
    if request.customer_ids:
        query = query.where(c.c.customer_id.in_(request.customer_ids))
    if request.relationship_manager_id:
        query = query.where(c.c.relationship_manager_id == request.relationship_manager_id)
    if request.branch_id:
        query = query.where(c.c.branch_id == request.branch_id)
    return query
