"""Propensity training as an operation (crmkit.operations): `train` creates it in the RPC's unit
of work; the coordinator reads the offer type's contact history, has a spawned worker process fit
and measure the model (never the event loop), then registers the version and completes the
operation in one transaction."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable

from google.protobuf.message import Message

from crm_campaign.propensity import training
from crm_campaign.propensity.model import PropensityModel, TrainedModel, TrainingParams
from crm_campaign.propensity.repository import PropensityRepository
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import (
    OperationRunner,
    Operations,
    RunningOperation,
    Started,
    complete_in,
    name_of,
    parse_name,
)

log = get_logger("crm.campaign.propensity")

KIND = "campaign.propensity_training"

ModelPayload = Callable[[PropensityModel], Message]


class PropensityModels:
    def __init__(self, *, db: Database, operations: Operations, runner: OperationRunner,
                 repository: PropensityRepository, idempotency: IdempotencyKeys, payload: ModelPayload) -> None:
        self._db = db
        self._operations = operations
        self._runner = runner
        self._repository = repository
        self._idempotency = idempotency
        self._payload = payload

    async def train(self, *, uow: UnitOfWork, params: TrainingParams, request_id: uuid.UUID | None,
                    request: Message, actor: Principal) -> Started:
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="TrainPropensityModel",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=request,
                                                  operation_id=operation_id)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._train, operation_id, params, actor.subject))
            log.info("propensity_training_started", operation_id=str(operation_id), offer_type=params.offer_type)

        return Started(operation, launch)

    async def get(self, *, uow: UnitOfWork, offer_type: str, version: int | None) -> PropensityModel:
        model = await self._repository.get(uow, offer_type=offer_type, version=version)
        if model is None:
            shown = "latest" if version is None else str(version)
            raise NotFound(f"no propensity model propensityModels/{offer_type}/versions/{shown}",
                           reason="PROPENSITY_MODEL_NOT_FOUND")
        return model

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _train(self, operation_id: uuid.UUID, params: TrainingParams, creator: str, run: RunningOperation
                     ) -> Message:
        await run.progress(stage="loading")
        async with self._db.raw() as connection:
            rows = await self._repository.training_rows(connection, offer_type=params.offer_type)
        await run.progress(total=len(rows), stage="training")
        trained: TrainedModel = await run.call(training.train, training.TrainingJob(params=params, rows=rows))
        await run.progress(done=len(rows), stage="registering")
        async with self._db.raw() as connection, connection.transaction():
            model = await self._repository.insert(connection, params=params, trained=trained, creator=creator)
            response = self._payload(model)
            await complete_in(connection, operation_id, response)
        log.info("propensity_model_trained", offer_type=model.offer_type, version=model.version,
                 roc_auc=round(model.metrics.roc_auc, 4), rows=len(rows))
        return response
