"""Model registry use cases: start a training operation, read the registry, promote a model (or roll
back to a retired one: promotion of a RETIRED model), retire a candidate. Status changes go on the
change feed in their transaction.

Training: `start_training` checks what needs no data, creates the PENDING `risk.train`
operation in the caller's unit of work and returns `Started`; the coordinator then trains in a
spawned worker (`OperationRunner.call`) and registers the model in one transaction with the
operation's completion (`complete_in`), so a failed run registers nothing. Bad data (unknown
columns, one-class labels) is only known in the worker: it fails the operation with the core's
INVALID_ARGUMENT or FAILED_PRECONDITION.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable

from google.protobuf.message import Message

from crm_risk.churn.model import TrainingParams, TrainingResult
from crm_risk.registry import repository, rules, worker
from crm_risk.registry.model import ACTIVE_ALIAS, KIND, RegisteredModel, SnapshotJob, Status, TrainingRequest
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound, PermissionDenied
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation, Started, complete_in, name_of, parse_name
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

log = get_logger("crm.risk.registry")

# Protos are made by the API layer, so this module stays free of generated messages.
SpecMessage = Callable[[TrainingRequest], Message]
ModelMessage = Callable[[RegisteredModel], Message]


class ChurnRegistry:
    def __init__(self, *, db: Database, operations: Operations, runner: OperationRunner,
                 idempotency: IdempotencyKeys, page_tokens: PageTokens, training_dir: str, cv_folds: int,
                 spec_message: SpecMessage, model_message: ModelMessage, outbox: Outbox,
                 fairness_ratio: float = 0.8, clock: Clock = utc_now) -> None:
        """`clock`: "now" for the ages a read-model snapshot computes."""
        self._db = db
        self._operations = operations
        self._runner = runner
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._training_dir = training_dir
        self._cv_folds = cv_folds
        self._spec_message = spec_message
        self._model_message = model_message
        self._outbox = outbox
        self._fairness_ratio = fairness_ratio
        self._clock = clock

    async def start_training(self, *, uow: UnitOfWork, request: TrainingRequest, request_id: uuid.UUID | None,
                             message: Message, actor: Principal) -> Started:
        checked = rules.check(request)
        path = rules.snapshot_path(self._training_dir, checked.file) if not checked.read_model else None
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=message, method="TrainChurnModel",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        spec = self._spec_message(checked)
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=spec,
                                                  operation_id=operation_id)
        job = SnapshotJob(
            path=str(path or ""), read_model=checked.read_model, features=rules.feature_specs(checked),
            label_attribute=checked.label_attribute,
            id_attribute=checked.id_attribute, groups=checked.groups,
            params=TrainingParams(hyperparameters=checked.hyperparameters, random_seed=checked.random_seed,
                                  validation_fraction=checked.validation_fraction, cv_folds=self._cv_folds,
                                  fairness_ratio=self._fairness_ratio,
                                  creator=actor.subject))

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(
                self._train, operation_id, job, checked.algorithm, spec.SerializeToString()))
            log.info("churn_training_started", operation_id=str(operation_id))

        return Started(operation, launch)

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _train(self, operation_id: uuid.UUID, job: SnapshotJob, algorithm: int, spec: bytes,
                     run: RunningOperation) -> Message:
        await run.progress(stage="training")
        if job.read_model:
            async with self._db.unit_of_work(read_only=True) as uow:
                job = dataclasses.replace(job, table=await repository.read_model_snapshot(
                    uow, job.label_attribute, today=self._clock().date()))
        result: TrainingResult = await run.call(worker.train_snapshot, job)
        async with self._db.raw() as connection, connection.transaction():
            # The last look at the cancel flag before the model becomes visible.
            await run.progress(stage="registering")
            model = await repository.insert(connection, model=result.model_version, artifact=result.artifact,
                                            algorithm=algorithm, training_spec=spec,
                                            operation_name=name_of(operation_id))
            response = self._model_message(model)
            await complete_in(connection, operation_id, response)
        log.info("churn_model_registered", operation_id=str(operation_id), churn_model_id=model.churn_model_id,
                 version=model.version, roc_auc=round(result.model_version.metrics.roc_auc, 4))
        return response

    async def get(self, *, uow: UnitOfWork, churn_model_id: str) -> RegisteredModel:
        if churn_model_id == ACTIVE_ALIAS:
            found = await repository.active(uow)
            if found is None:
                raise NotFound("no churn model is active yet: promote one", reason="NO_ACTIVE_MODEL")
            return found
        found = await repository.get(uow, churn_model_id)
        if found is None:
            raise _not_found(churn_model_id)
        return found

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str, status: int, algorithm: int
                   ) -> Page[RegisteredModel]:
        limit = clamp_page_size(page_size)
        query = {"status": status, "algorithm": algorithm}
        before = self._page_tokens.decode(page_token, query=query)
        found = await repository.page(uow, before=before, limit=limit + 1, status=status, algorithm=algorithm)
        return self._page_tokens.page(found, limit=limit, key=lambda m: m.version, query=query)

    async def promote(self, *, uow: UnitOfWork, churn_model_id: str, reason: str, etag: str,
                      request_id: uuid.UUID | None, message: Message, actor: Principal
                      ) -> tuple[RegisteredModel, str]:
        """The promoted model and the name of the model it replaced ("" when none was active)."""
        v = Violations()
        rules.check_reason(v, reason)
        v.raise_if_any()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=message, method="PromoteChurnModel",
            resource_name=f"churnModels/{churn_model_id}", replay=functools.partial(self._replayed, uow))
        if replayed is not None:
            return replayed

        def refuse(model: RegisteredModel) -> None:
            if model.creator == actor.subject:
                raise PermissionDenied("a model cannot be promoted by the person who trained it (four eyes)",
                                       reason="SELF_PROMOTION", metadata={"churn_model": model.name})
            if model.status == Status.ACTIVE:
                raise FailedPrecondition(f"{model.name} is already active", reason="MODEL_ALREADY_ACTIVE",
                                         metadata={"churn_model": model.name})

        await repository.lock_promotions(uow)
        model = await load_for_update(repository.get(uow, churn_model_id, for_update=True), etag=etag,
                                      not_found=lambda: _not_found(churn_model_id), check=refuse)
        previous = await repository.active(uow, for_update=True)
        if previous is not None:
            await repository.retire(uow, previous.churn_model_id, reason=f"replaced by {model.name}")
        promoted = await repository.promote(uow, churn_model_id, promoter=actor.subject, reason=reason)
        if previous is not None:
            retired = await repository.get(uow, previous.churn_model_id)
            assert retired is not None
            await self._publish(uow, retired, actor=actor)
        await self._publish(uow, promoted, actor=actor)
        log.info("churn_model_promoted", churn_model_id=churn_model_id,
                 previous=previous.churn_model_id if previous else "")
        return promoted, previous.name if previous else ""

    async def retire(self, *, uow: UnitOfWork, churn_model_id: str, reason: str, etag: str,
                     request_id: uuid.UUID | None, message: Message, actor: Principal) -> RegisteredModel:
        """Retire a candidate. The active model is refused: promoting another (or rolling back to a
        retired one with PromoteChurnModel) is how it leaves, so scoring always has a model."""
        v = Violations()
        rules.check_reason(v, reason)
        v.raise_if_any()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=message, method="RetireChurnModel",
            resource_name=f"churnModels/{churn_model_id}",
            replay=lambda name: self.get(uow=uow, churn_model_id=name.removeprefix("churnModels/")))
        if replayed is not None:
            return replayed

        def refuse(model: RegisteredModel) -> None:
            if model.status == Status.ACTIVE:
                raise FailedPrecondition(
                    f"{model.name} is active: promote another model (or roll back to a retired one) instead, "
                    "so scoring always has a model", reason="MODEL_ACTIVE", metadata={"churn_model": model.name})
            if model.status == Status.RETIRED:
                raise FailedPrecondition(f"{model.name} is already retired", reason="MODEL_ALREADY_RETIRED",
                                         metadata={"churn_model": model.name})

        await repository.lock_promotions(uow)
        await load_for_update(repository.get(uow, churn_model_id, for_update=True), etag=etag,
                              not_found=lambda: _not_found(churn_model_id), check=refuse)
        await repository.retire(uow, churn_model_id, reason=reason)
        retired = await repository.get(uow, churn_model_id)
        assert retired is not None
        await self._publish(uow, retired, actor=actor)
        log.info("churn_model_retired", churn_model_id=churn_model_id)
        return retired

    async def _publish(self, uow: UnitOfWork, model: RegisteredModel, *, actor: Principal) -> None:
        """A status change on the change feed, in the caller's transaction."""
        await self._outbox.append(uow, resource_name=model.name, change_type=ChangeType.CHANGE_TYPE_UPDATED,
                                  payload=self._model_message(model), actor=actor.subject)

    async def _replayed(self, uow: UnitOfWork, name: str) -> tuple[RegisteredModel, str]:
        return await self.get(uow=uow, churn_model_id=name.removeprefix("churnModels/")), ""


def _not_found(churn_model_id: str) -> NotFound:
    return NotFound(f"churn model {churn_model_id} not found", reason="CHURN_MODEL_NOT_FOUND",
                    metadata={"churn_model_id": churn_model_id})
