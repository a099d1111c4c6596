"""Scoring use cases, in the caller's unit of work: score one customer now (audited, optionally
written back as the current score and published when it moves), and read the current score.

The model's arithmetic is the churn core's (`training.score_loaded`; the artifact's SHA-256 is
checked before it is unpickled, once per process: `worker.loaded_model`); it runs in a thread so
the event loop keeps serving. Inputs come from
the customer read model's feature values, by the names the model was trained on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from crm_risk.churn import features as churn_features
from crm_risk.churn import training
from crm_risk.churn.model import Encoding, FeatureKind, FeatureSpec
from crm_risk.customers.model import CustomerRecord
from crm_risk.customers.repository import CustomerFactsSource
from crm_risk.decisions.model import Decision, DecisionType
from crm_risk.decisions.service import DecisionAudits
from crm_risk.registry import repository as registry_repository
from crm_risk.registry.model import ACTIVE_ALIAS, RegisteredModel, Status
from crm_risk.registry.service import ChurnRegistry
from crm_risk.scoring import repository, rules, worker
from crm_risk.scoring.model import Score
from crm_risk.tables import audit_record
from crmkit.audit import AuditEntry
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.clock import Clock
from crmkit.db import UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound, PermissionDenied
from crmkit.idempotency import IdempotencyKeys, parse_request_id
from crmkit.outbox import ChangeType, Outbox
from crmkit.resources import Purpose, check_purpose
from crmkit.validation import Violations

# Turns a score into the change-feed payload; supplied by the API layer (no protos here).
ScorePayload = Callable[[Score], Message]
RESOURCE_TYPE = "crm.risk.v1.ChurnScore"


class Scoring:
    def __init__(self, *, registry: ChurnRegistry, customers: CustomerFactsSource, decisions: DecisionAudits,
                 outbox: Outbox, idempotency: IdempotencyKeys, feed_payload: ScorePayload, clock: Clock) -> None:
        self._registry = registry
        self._customers = customers
        self._decisions = decisions
        self._outbox = outbox
        self._idempotency = idempotency
        self._feed_payload = feed_payload
        self._clock = clock
        # churn_model_id -> (artifact, its SHA-256, encoding): a registered model never changes.
        self._artifacts: dict[str, tuple[bytes, str, Encoding]] = {}

    async def score_one(self, *, uow: UnitOfWork, customer: str, model: str, max_drivers: int, write_back: bool,
                        purpose: Purpose, request_id: str, message: Message, actor: Principal) -> Score:
        """INVALID_ARGUMENT naming every bad field of the request at once."""
        v = Violations()
        rules.CUSTOMER_NAME.check(customer, "customer", v, required=True)
        if model:
            rules.CHURN_MODEL_NAME.check(model, "model", v)
        drivers = rules.validate_request(max_drivers, v)
        check_purpose(purpose, v)
        key = parse_request_id(request_id, violations=v)
        v.raise_if_any()
        customer_id = rules.CUSTOMER_NAME.parse_one(customer, "customer")
        return await self._score(uow=uow, customer_id=customer_id,
                                 churn_model_id=rules.CHURN_MODEL_NAME.parse_one(model, "model") if model else "",
                                 drivers=drivers, write_back=write_back, purpose=purpose, request_id=key,
                                 message=message, actor=actor)

    async def _score(self, *, uow: UnitOfWork, customer_id: str, churn_model_id: str, drivers: int,
                     write_back: bool, purpose: Purpose, request_id: uuid.UUID | None, message: Message,
                     actor: Principal) -> Score:
        if write_back:
            replayed = await self._idempotency.claim_or_replay(
                uow, principal=actor.subject, request_id=request_id, request=message, method="ScoreCustomer",
                resource_name=f"customers/{customer_id}", replay=lambda _: self.current(
                    uow=uow, customer_id=customer_id, actor=actor))
            if replayed is not None:
                return replayed
        model = await self.model(uow, churn_model_id)
        if write_back and model.status != Status.ACTIVE:
            raise FailedPrecondition(f"{model.name} is not the active model: only the active model's scores are "
                                     "written back", reason="MODEL_NOT_ACTIVE", metadata={"churn_model": model.name})
        now = self._clock()
        found = await self._customers.find(uow, [customer_id], today=now.date())
        record = found.get(customer_id)
        if record is None:
            raise NotFound(f"customer {customer_id} is not in risk's read model (yet)", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer": f"customers/{customer_id}"})
        _check_book(record.relationship_manager_id, actor, customer_id)
        artifact, sha256, encoding = await self.artifact(uow, model.churn_model_id)
        scored = await asyncio.to_thread(_score, record, artifact, sha256, encoding, drivers)
        names = [f.name for f in encoding.features]
        band = rules.band_of(scored.probability, model.band_thresholds)
        [audit] = await self._decisions.record(uow=uow, decisions=[Decision(
            decision_type=DecisionType.CHURN_SCORE, customer_id=customer_id, decided_by=model.name,
            decider_version=str(model.version), outcome=f"band={band.name} probability={scored.probability:.4f}",
            reason_codes=tuple(d.feature for d in scored.drivers),
            inputs=rules.numeric_inputs(names, record.feature_values))], requester=actor.subject, now=now)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.score", resource_name=f"customers/{customer_id}",
            purpose=purpose.purpose, justification=purpose.justification)])
        score = Score(customer_id=customer_id, churn_model_id=model.churn_model_id, model_version=model.version,
                      probability=scored.probability, risk_band=band, drivers=scored.drivers,
                      features_as_of=record.data_as_of, score_time=now, decision_audit=audit,
                      relationship_manager_id=record.relationship_manager_id, branch_id=record.branch_id)
        if write_back:
            previous = await repository.get(uow, customer_id, for_update=True)
            await repository.put(uow, score)
            if rules.publishes(previous, score):
                await self._outbox.append(uow, resource_name=f"customers/{customer_id}",
                                          change_type=ChangeType.CHANGE_TYPE_UPDATED,
                                          payload=self._feed_payload(score), actor=actor.subject,
                                          resource_type=RESOURCE_TYPE)
        return score

    async def current(self, *, uow: UnitOfWork, customer_id: str, actor: Principal) -> Score:
        """The stored current score: one read, nothing written (`customer_id` parsed by the caller)."""
        score = await repository.get(uow, customer_id)
        if score is None:
            raise NotFound(f"customer {customer_id} has no current churn score", reason="NO_CURRENT_SCORE",
                           metadata={"customer": f"customers/{customer_id}"})
        _check_book(score.relationship_manager_id, actor, customer_id)
        return score

    async def model(self, uow: UnitOfWork, churn_model_id: str) -> RegisteredModel:
        if churn_model_id:
            return await self._registry.get(uow=uow, churn_model_id=churn_model_id)
        try:
            return await self._registry.get(uow=uow, churn_model_id=ACTIVE_ALIAS)
        except NotFound:
            raise FailedPrecondition("no churn model is active: promote one, or name a model to score with",
                                     reason="NO_ACTIVE_MODEL") from None

    async def artifact(self, uow: UnitOfWork, churn_model_id: str) -> tuple[bytes, str, Encoding]:
        cached = self._artifacts.get(churn_model_id)
        if cached is None:
            stored = await registry_repository.artifact(uow, churn_model_id)
            assert stored is not None, "a registered model has its artifact"
            artifact, sha256, encoding = stored
            cached = self._artifacts[churn_model_id] = (artifact, sha256, _encoding(encoding))
        return cached


def _score(record: CustomerRecord, artifact: bytes, sha256: str, encoding: Encoding, drivers: int) -> Any:
    names = [f.name for f in encoding.features]
    missing = rules.missing_features(names, record.feature_values)
    if len(missing) == len(names):
        raise FailedPrecondition(
            f"risk's read model holds none of the model's features for this customer ({', '.join(missing[:5])}...)",
            reason="FEATURES_MISSING", metadata={"missing": ",".join(missing[:20])})
    table = rules.input_table(record.customer_id, names, record.feature_values)
    data = churn_features.snapshot_scoring_data(table, encoding=encoding, id_attribute=rules.ID_COLUMN)
    [scored] = training.score_loaded(worker.loaded_model(artifact, sha256), data, top_drivers=drivers)
    return scored


def _encoding(stored: dict[str, Any]) -> Encoding:
    return Encoding(features=tuple(FeatureSpec(f["name"], FeatureKind(f["kind"])) for f in stored["features"]),
                    categories=tuple(tuple(c) for c in stored["categories"]), columns=tuple(stored["columns"]))


def _check_book(relationship_manager_id: str, actor: Principal, customer_id: str) -> None:
    if actor.is_relationship_manager_only and relationship_manager_id != actor.subject:
        raise PermissionDenied("relationship managers score customers of their own book only",
                               reason="OUTSIDE_BOOK", metadata={"customer": f"customers/{customer_id}"})
