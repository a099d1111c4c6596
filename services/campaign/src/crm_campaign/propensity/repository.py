"""All SQL of the propensity model registry and its training data."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.propensity.model import (
    LatestVersion,
    Metrics,
    PropensityModel,
    TrainedModel,
    TrainingParams,
    TrainingRow,
)
from crm_campaign.propensity.tables import propensity_model as t
from crmkit.db import UnitOfWork

_FIELDS = ("channel", "contact_month", "contact_day_of_week", "attempt_number", "previous_outcome",
           "days_since_previous_contact", "previous_contact_count")


class PropensityRepository:
    async def training_rows(self, connection: asyncpg.Connection, *, offer_type: str) -> list[TrainingRow]:
        """The offer type's contacts whose customer accepted or declined, in import order, with the
        customer's features from profile where campaign has them."""
        records = await connection.fetch(
            f"""SELECT c.customer_id, c.outcome, {", ".join(f"c.{name}" for name in _FIELDS)},
                       c.context::text AS context, coalesce(f.features, '{{}}'::jsonb)::text AS customer
                FROM imported_contact c LEFT JOIN customer_feature f ON f.customer_id = c.customer_id
                WHERE c.offer_type = $1 AND c.outcome IN (1, 2)
                ORDER BY c.imported_contact_id""", offer_type)  # noqa: S608  # column names are constants
        return [TrainingRow(customer_id=r["customer_id"], accepted=r["outcome"] == 1,
                            fields={name: r[name] for name in _FIELDS}, context=json.loads(r["context"]),
                            customer=json.loads(r["customer"]))
                for r in records]

    async def insert(self, connection: asyncpg.Connection, *, params: TrainingParams, trained: TrainedModel,
                     creator: str) -> PropensityModel:
        """The offer type's next version (its versions are serialised by a transaction lock)."""
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext('propensity_model:' || $1))",
                                 params.offer_type)
        row = await connection.fetchrow(
            """INSERT INTO propensity_model (offer_type, version, algorithm, features, metrics, data_fingerprint,
                                             seed, artifact, artifact_sha256, creator)
               SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9
               FROM propensity_model WHERE offer_type = $1
               RETURNING *""",
            params.offer_type, trained.algorithm, list(trained.features),
            json.dumps(dataclasses.asdict(trained.metrics)), trained.data_fingerprint, params.seed,
            trained.artifact, trained.artifact_sha256, creator)
        return _model(dict(row))

    async def get(self, uow: UnitOfWork, *, offer_type: str, version: int | None) -> PropensityModel | None:
        """A version, or the newest when `version` is None."""
        query = sa.select(*[col for col in t.c if col.name not in ("artifact", "artifact_sha256")]).where(
            t.c.offer_type == offer_type)
        query = (query.where(t.c.version == version) if version is not None
                 else query.order_by(t.c.version.desc()).limit(1))
        row = (await uow.execute(query)).one_or_none()
        return None if row is None else _model(dict(row._mapping))


    async def latest_versions(self, uow: UnitOfWork, *, offer_types: Sequence[str]) -> list[LatestVersion]:
        """The newest version of each of these offer types that has one (no artifacts)."""
        if not offer_types:
            return []
        rows = (await uow.execute(
            sa.select(t.c.offer_type, t.c.version, t.c.artifact_sha256)
            .where(t.c.offer_type.in_(sorted(set(offer_types))))
            .ext(pg.distinct_on(t.c.offer_type)).order_by(t.c.offer_type, t.c.version.desc()))).all()
        return [LatestVersion(row.offer_type, row.version, row.artifact_sha256) for row in rows]

    async def artifact(self, uow: UnitOfWork, *, offer_type: str, version: int) -> bytes | None:
        """A version's stored bytes, as they are (the caller checks them against the registered hash)."""
        return await uow.scalar(sa.select(t.c.artifact).where(t.c.offer_type == offer_type, t.c.version == version))


def _model(row: dict[str, Any]) -> PropensityModel:
    metrics = row["metrics"]
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    return PropensityModel(offer_type=row["offer_type"], version=row["version"], algorithm=row["algorithm"],
                           features=tuple(row["features"]), metrics=Metrics(**metrics),
                           data_fingerprint=row["data_fingerprint"], seed=row["seed"], creator=row["creator"],
                           created_at=row["created_at"])

