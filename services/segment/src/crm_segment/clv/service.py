"""Lifetime-value use cases: start a fit, read a model, predict a customer's value.

A fit is the `segment.ltv_fit` operation: the RPC checks the request, creates the operation and
the model row in its unit of work and returns; the coordinator summarises the read model's
per-day transactions in the service's loop, fits both models in a spawned worker
(`OperationRunner.call`: the optimiser is seconds of CPU) and records the parameters in the
transaction that completes the operation, so a failed or cancelled fit leaves a model without
parameters, whose state (its operation's) says why.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from google.protobuf.message import Message

from crm_segment.clv import repository, rules
from crm_segment.clv.model import (
    KIND,
    MIN_REPEAT_CUSTOMERS,
    CustomerValue,
    FitJob,
    FitSettings,
    Prediction,
    StoredModel,
)
from crm_segment.realtime import repository as values
from crm_segment.segments.repository import SegmentRepository
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound, PermissionDenied
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import SUCCEEDED, OperationRunner, Operations, RunningOperation, Started, complete_in, name_of
from crmkit.operations import parse_name as parse_operation_name
from crmkit.resources import Purpose

log = get_logger("crm.segment.clv")

# The operation's response, made by the API layer so this module stays free of generated messages.
ModelMessage = Callable[[StoredModel], Message]


class LifetimeValues:
    def __init__(self, *, db: Database, operations: Operations, runner: OperationRunner,
                 idempotency: IdempotencyKeys, model_message: ModelMessage, audit: AuditWriter | None = None,
                 clock: Clock = utc_now) -> None:
        self._db = db
        # Records who read which customer's value and why.
        self._audit = audit
        self._operations = operations
        self._runner = runner
        self._idempotency = idempotency
        self._model_message = model_message
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    def today(self) -> date:
        return self._clock().astimezone(UTC).date()

    async def start_fit(self, *, uow: UnitOfWork, settings: FitSettings, request_id: uuid.UUID | None,
                        request: Message, actor: Principal) -> tuple[Started, str]:
        """The PENDING operation and the model's name; the caller launches it after `uow` commits."""
        if settings.population_segment_id and await SegmentRepository().get(
                uow, settings.population_segment_id) is None:
            raise NotFound(f"segment {settings.population_segment_id} not found", reason="SEGMENT_NOT_FOUND",
                           metadata={"segment_id": settings.population_segment_id})
        operation_id = uuid.uuid4()
        model_id = operation_id.hex
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="FitLifetimeValueModel",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed, f"lifetimeValueModels/{parse_operation_name(replayed.operation.name).hex}"
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=request,
                                                  operation_id=operation_id)
        await repository.insert(uow, model_id=model_id, settings=settings, operation_id=operation_id,
                                creator=actor.subject)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._fit, model_id, settings, operation_id))
            log.info("ltv_fit_started", operation_id=str(operation_id))

        return Started(operation, launch), f"lifetimeValueModels/{model_id}"

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_operation_name(name)))

    async def _fit(self, model_id: str, settings: FitSettings, operation_id: uuid.UUID, run: RunningOperation
                   ) -> Message:
        await run.progress(stage="summarising")
        s = settings
        async with self._db.raw() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            days = await repository.day_summaries(connection, first=s.calibration_start, last=s.calibration_end,
                                                  segment_id=s.population_segment_id)
            actual = (await repository.holdout_days(connection, start=s.holdout_start, end=s.holdout_end)
                      if s.holdout_start is not None and s.holdout_end is not None else None)
        summaries = tuple(rules.summary_of(d, end=s.calibration_end, unit=s.unit) for d in days)
        repeat = sum(1 for summary in summaries if summary.frequency > 0)
        if repeat < MIN_REPEAT_CUSTOMERS:
            raise FailedPrecondition(
                f"the calibration period has {repeat} customers with repeat transactions; a fit needs at least "
                f"{MIN_REPEAT_CUSTOMERS}", reason="TOO_FEW_REPEAT_CUSTOMERS",
                metadata={"repeat_customers": str(repeat)})
        await run.progress(done=0, total=len(summaries), stage="fitting")
        result = await run.call(rules.fit, FitJob(summaries=summaries, penalizer=s.penalizer))
        holdout = None
        if actual is not None and s.holdout_start is not None and s.holdout_end is not None:
            holdout = rules.holdout(summaries, actual, result, unit=s.unit,
                                    holdout_days=(s.holdout_end - s.holdout_start).days)
        async with self._db.unit_of_work(read_only=True) as uow:
            pending = await repository.get(uow, model_id)
        assert pending is not None
        async with self._db.raw() as connection, connection.transaction():
            # The last look at the cancel flag before the parameters become visible.
            await run.progress(done=len(summaries), total=len(summaries), stage="recording")
            fitted_at = await repository.record_fit(connection, model_id=model_id, customers=len(summaries),
                                                    result=result, holdout=holdout)
            response = self._model_message(dataclasses.replace(
                pending, state=SUCCEEDED, fitted_at=fitted_at, customer_count=len(summaries),
                repeat_customer_count=result.gamma_gamma.customers, result=result, holdout=holdout))
            await complete_in(connection, operation_id, response)
        log.info("ltv_fitted", operation_id=str(operation_id), customers=len(summaries), repeat_customers=repeat)
        return response

    async def get(self, *, uow: UnitOfWork, model_id: str) -> StoredModel:
        found = await repository.get(uow, model_id)
        if found is None:
            raise _model_not_found(model_id)
        return found

    async def predict(self, *, uow: UnitOfWork, customer_id: str, model_id: str | None, horizon_days: int | None,
                      annual_discount_rate: float | None, purpose: Purpose, actor: Principal) -> Prediction:
        """The customer's value over the horizon from today (the model's defaults where unset)."""
        features = await values.features(uow, customer_id)
        if features is None:
            raise NotFound(f"customer {customer_id} is not in the read model", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer_id": customer_id})
        if actor.is_relationship_manager_only and features.get("relationship_manager_id") != actor.subject:
            raise PermissionDenied("the customer is outside your book", reason="OUTSIDE_BOOK")
        if self._audit is not None:
            await self._audit.record(AuditEntry(principal=actor.subject, action="lifetime_value.read",
                                                resource_name=f"customers/{customer_id}", purpose=purpose.purpose,
                                                justification=purpose.justification))
        if model_id:
            model = await self.get(uow=uow, model_id=model_id)
            if model.state != SUCCEEDED or model.result is None:
                raise FailedPrecondition(f"{model.name} has not been fitted successfully", reason="LTV_MODEL_NOT_READY",
                                         metadata={"lifetime_value_model": model.name})
        else:
            latest = await repository.latest_fitted(uow)
            if latest is None:
                raise FailedPrecondition("no lifetime-value model has been fitted yet: call FitLifetimeValueModel",
                                         reason="NO_LTV_MODEL")
            model = latest
        horizon = horizon_days or model.settings.horizon_days
        rate = model.settings.annual_discount_rate if annual_discount_rate is None else annual_discount_rate
        today = self.today()
        value = (await self.values_under(uow, model, [customer_id], today=today, horizon_days=horizon,
                                         annual_discount_rate=rate))[0]
        summary, customer_value = value
        return Prediction(customer_id=customer_id, model_id=model.model_id, horizon_days=horizon,
                          annual_discount_rate=rate, summary=summary, value=customer_value,
                          computed_at=self._clock())

    async def values_under(self, uow: UnitOfWork, model: StoredModel, customer_ids: Sequence[str], *, today: date,
                           horizon_days: int, annual_discount_rate: float
                           ) -> list[tuple[rules.CustomerSummary, CustomerValue]]:
        """Each customer's summary up to today and value; a customer without a transaction is a
        newcomer at today (no repeat, age 0), valued at the population's mean."""
        assert model.result is not None
        unit = model.settings.unit
        found = {d.customer_id: rules.summary_of(d, end=today, unit=unit)
                 for d in await repository.day_summaries_of(uow, customer_ids, last=today)}
        summaries = [found.get(c) or rules.CustomerSummary(c, 0, 0.0, 0.0, 0.0) for c in customer_ids]
        predicted = rules.values_over(summaries, model.result, unit=unit, horizon_days=horizon_days,
                                      annual_discount_rate=annual_discount_rate)
        return list(zip(summaries, predicted, strict=True))

    async def latest(self, uow: UnitOfWork) -> StoredModel | None:
        return await repository.latest_fitted(uow)


def _model_not_found(model_id: str) -> NotFound:
    return NotFound(f"lifetime-value model {model_id} not found", reason="LTV_MODEL_NOT_FOUND",
                    metadata={"lifetime_value_model_id": model_id})
