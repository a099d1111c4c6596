"""All SQL about the model registry. Never commits: the caller's transaction does.

`insert` runs on a raw asyncpg connection, because it commits together with the training
operation's completion (`crmkit.operations.complete_in`); the rest run in a unit of work."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg
import sqlalchemy as sa

from crm_risk.churn.model import ModelVersion, SnapshotTable
from crm_risk.customers.repository import SCORING_COLUMNS, scoring_values
from crm_risk.customers.tables import customer
from crm_risk.registry.model import RegisteredModel, Status
from crm_risk.registry.tables import churn_model as t
from crmkit.db import UnitOfWork

_READ = [c for c in t.c if c.name not in ("artifact", "params", "encoding")]


def _from_row(row: Any) -> RegisteredModel:
    fields = {f.name for f in dataclasses.fields(RegisteredModel)}
    values = {name: value for name, value in row._mapping.items() if name in fields}
    values["status"] = Status(values["status"])
    return RegisteredModel(**values)


async def insert(connection: asyncpg.Connection, *, model: ModelVersion, artifact: bytes, algorithm: int,
                 training_spec: bytes, operation_name: str) -> RegisteredModel:
    churn_model_id = str(uuid.uuid4())
    row = await connection.fetchrow(
        """INSERT INTO churn_model (churn_model_id, model_version, status, algorithm, training_spec, features, params,
               metrics, cross_validation, band_thresholds, fairness, encoding, training_data_sha256, artifact,
               artifact_sha256, framework_version, training_operation, creator)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb, $10::jsonb, $11::jsonb, $12::jsonb,
                   $13, $14, $15, $16, $17, $18)
           RETURNING version, create_time""",
        churn_model_id, model.version, int(Status.CANDIDATE), algorithm, training_spec,
        _json(_features(model)), _json(model.params), _json(model.metrics),
        _json(model.cross_validation) if model.cross_validation is not None else None,
        _json(model.band_thresholds), _json(model.fairness), _json(model.encoding), model.data_fingerprint,
        artifact, model.artifact_sha256, model.framework_version, operation_name, model.creator)
    assert row is not None
    return RegisteredModel(
        churn_model_id=churn_model_id, version=row["version"], model_version=model.version,
        status=Status.CANDIDATE, algorithm=algorithm, training_spec=training_spec, features=_features(model),
        metrics=json.loads(_json(model.metrics)),
        cross_validation=json.loads(_json(model.cross_validation)) if model.cross_validation else None,
        band_thresholds=json.loads(_json(model.band_thresholds)), fairness=json.loads(_json(model.fairness)),
        training_data_sha256=model.data_fingerprint, artifact_sha256=model.artifact_sha256,
        framework_version=model.framework_version, training_operation=operation_name, creator=model.creator,
        create_time=row["create_time"], promoter="", promote_time=None, retire_time=None, status_reason="",
        revision=1)


def _features(model: ModelVersion) -> list[dict[str, Any]]:
    """The model's columns in input order, each with its permutation importance (0 when skipped)."""
    importance = {i.name: i.importance for i in model.importances}
    return [{"name": column, "importance": importance.get(column, 0.0)} for column in model.encoding.columns]


def _json(value: Any) -> str:
    return json.dumps(dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type)
                      else value)


async def get(uow: UnitOfWork, churn_model_id: str, *, for_update: bool = False) -> RegisteredModel | None:
    query = sa.select(*_READ).where(t.c.churn_model_id == churn_model_id)
    if for_update:
        query = query.with_for_update()
    row = (await uow.execute(query)).first()
    return _from_row(row) if row is not None else None


async def active(uow: UnitOfWork, *, for_update: bool = False) -> RegisteredModel | None:
    query = sa.select(*_READ).where(t.c.status == int(Status.ACTIVE))
    if for_update:
        query = query.with_for_update()
    row = (await uow.execute(query)).first()
    return _from_row(row) if row is not None else None


async def page(uow: UnitOfWork, *, before: int | None, limit: int, status: int, algorithm: int
               ) -> Sequence[RegisteredModel]:
    """Newest version first."""
    query = sa.select(*_READ).order_by(t.c.version.desc()).limit(limit)
    if before is not None:
        query = query.where(t.c.version < before)
    if status:
        query = query.where(t.c.status == status)
    if algorithm:
        query = query.where(t.c.algorithm == algorithm)
    return [_from_row(row) for row in (await uow.execute(query)).all()]


async def lock_promotions(uow: UnitOfWork) -> None:
    """Serialise status changes of the registry until the transaction ends. Locking the active
    row is not enough: a promotion waiting on it wakes to find it retired and no active row left,
    while the one it waited for has just made another model active."""
    await uow.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('crm_risk.churn_model.status'))"))


async def retire(uow: UnitOfWork, churn_model_id: str, *, reason: str) -> None:
    await uow.execute(sa.update(t).where(t.c.churn_model_id == churn_model_id).values(
        status=int(Status.RETIRED), retire_time=sa.func.now(), status_reason=reason, revision=t.c.revision + 1))


async def promote(uow: UnitOfWork, churn_model_id: str, *, promoter: str, reason: str) -> RegisteredModel:
    await uow.execute(sa.update(t).where(t.c.churn_model_id == churn_model_id).values(
        status=int(Status.ACTIVE), promoter=promoter, promote_time=sa.func.now(), retire_time=None,
        status_reason=reason, revision=t.c.revision + 1))
    found = await get(uow, churn_model_id)
    assert found is not None
    return found


async def artifact(uow: UnitOfWork, churn_model_id: str) -> tuple[bytes, str, dict[str, Any]] | None:
    """The model's pickled artifact, its registered SHA-256 and its encoding (JSON), for scoring."""
    row = (await uow.execute(sa.select(t.c.artifact, t.c.artifact_sha256, t.c.encoding)
                             .where(t.c.churn_model_id == churn_model_id))).first()
    return (bytes(row.artifact), row.artifact_sha256, row.encoding) if row is not None else None


async def read_model_snapshot(uow: UnitOfWork, label_attribute: str, *, today: date) -> SnapshotTable:
    """The live customers of the read model that have the label attribute, as a snapshot:
    `customer_id` and their scoring inputs as scoring reads them (custom attributes by id, gender,
    region, birth year, and `age_years`: the current age, or an age a source stated) as columns,
    missing where a customer has none. Whole numbers read as text without a fraction, so a 1/0
    flag reads as a label."""
    c = customer.c
    rows = (await uow.execute(sa.select(c.customer_id, *SCORING_COLUMNS).where(
        ~c.removed, c.feature_values.has_key(label_attribute)).order_by(c.customer_id))).all()
    values = [scoring_values(row, today) for row in rows]
    columns = sorted({key for row in values for key in row} - {"customer_id"})
    return SnapshotTable(columns=("customer_id", *columns), rows=tuple(
        (row.customer_id, *(_cell(inputs.get(name)) for name in columns)) for row, inputs in zip(rows, values,
                                                                                                  strict=True)))


def _cell(value: Any) -> str | float | None:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str | float) or value is None else str(value)
