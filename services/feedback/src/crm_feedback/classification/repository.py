"""All SQL about the text classifier registry. Never commits: the caller's transaction does.

`insert` runs on a raw asyncpg connection, because it commits together with the training
operation's completion (`crmkit.operations.complete_in`); the rest run in a unit of work."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa

from crm_feedback.classification.model import RegisteredClassifier, Status, Target
from crm_feedback.classification.tables import text_classifier as t
from crm_feedback.classification.training import TrainingResult
from crmkit.db import UnitOfWork

_READ = [c for c in t.c if c.name != "artifact"]


def _from_row(row: Any) -> RegisteredClassifier:
    fields = {f.name for f in dataclasses.fields(RegisteredClassifier)}
    values = {name: value for name, value in row._mapping.items() if name in fields}
    values["status"] = Status(values["status"])
    values["target"] = Target(values["target"])
    return RegisteredClassifier(**values)


async def insert(connection: asyncpg.Connection, *, result: TrainingResult, target: Target, training_spec: bytes,
                 operation_name: str, creator: str, activate: bool) -> RegisteredClassifier:
    """Registers the classifier; when `activate`, retires the target's active one first (the
    caller serialises activations with `lock_activations`)."""
    if activate:
        await connection.execute(
            "UPDATE text_classifier SET status = $1, retire_time = now() WHERE target = $2 AND status = $3",
            int(Status.RETIRED), int(target), int(Status.ACTIVE))
    row = await connection.fetchrow(
        """INSERT INTO text_classifier (text_classifier_id, target, status, model_version, training_spec, labels,
               dropped_labels, metrics, tuning, algorithm, training_data_sha256, artifact, artifact_sha256,
               framework_version, training_operation, creator, activate_time)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb, $10, $11, $12, $13, $14, $15, $16,
                   CASE WHEN $17 THEN now() END)
           RETURNING *""",
        str(uuid.uuid4()), int(target), int(Status.ACTIVE if activate else Status.CANDIDATE), result.model_version,
        training_spec, json.dumps(list(result.labels)), json.dumps(list(result.dropped_labels)),
        json.dumps(dataclasses.asdict(result.metrics)), json.dumps([list(item) for item in result.tuning]),
        result.algorithm, result.data_sha256, result.artifact, result.artifact_sha256, result.framework_version,
        operation_name, creator, activate)
    assert row is not None
    values = {k: (json.loads(v) if k in ("labels", "dropped_labels", "metrics", "tuning") else v)
              for k, v in dict(row).items() if k != "artifact"}
    values["status"], values["target"] = Status(values["status"]), Target(values["target"])
    return RegisteredClassifier(**values)


async def lock_activations(connection: asyncpg.Connection) -> None:
    """Serialise activations until the transaction ends (two trainings finishing together)."""
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('crm_feedback.text_classifier.status'))")


async def get(uow: UnitOfWork, text_classifier_id: str) -> RegisteredClassifier | None:
    row = (await uow.execute(sa.select(*_READ).where(t.c.text_classifier_id == text_classifier_id))).first()
    return _from_row(row) if row is not None else None


async def active(uow: UnitOfWork, target: Target) -> RegisteredClassifier | None:
    query = sa.select(*_READ).where(t.c.target == int(target), t.c.status == int(Status.ACTIVE))
    row = (await uow.execute(query)).first()
    return _from_row(row) if row is not None else None


async def active_versions(uow: UnitOfWork) -> dict[Target, tuple[str, str, str]]:
    """Per target with an active classifier: its id, model version and artifact hash (no artifact)."""
    query = sa.select(t.c.target, t.c.text_classifier_id, t.c.model_version, t.c.artifact_sha256).where(
        t.c.status == int(Status.ACTIVE))
    return {Target(row.target): (row.text_classifier_id, row.model_version, row.artifact_sha256)
            for row in (await uow.execute(query)).all()}


async def artifact(uow: UnitOfWork, text_classifier_id: str) -> bytes | None:
    value = await uow.scalar(sa.select(t.c.artifact).where(t.c.text_classifier_id == text_classifier_id))
    return bytes(value) if value is not None else None


async def page(uow: UnitOfWork, *, before: int | None, limit: int, target: int) -> Sequence[RegisteredClassifier]:
    """Newest version first."""
    query = sa.select(*_READ).order_by(t.c.version.desc()).limit(limit)
    if before is not None:
        query = query.where(t.c.version < before)
    if target:
        query = query.where(t.c.target == target)
    return [_from_row(row) for row in (await uow.execute(query)).all()]
