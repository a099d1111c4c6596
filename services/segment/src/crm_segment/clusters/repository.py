"""All SQL of clustering runs. The start inserts the run in the RPC's unit of work (SQLAlchemy
Core); reads and the worker's outcome run on plain asyncpg connections. Nothing here opens or
commits a transaction; the caller's does.

A run's state is SUCCEEDED once it has completed (`completed_at`, set in the transaction that
completes its operation); before that it is its operation's state, and FAILED when the operation
is gone (purged after its retention).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_segment.clusters.model import (
    Cluster,
    ClusteringResult,
    ClusteringRun,
    ClusteringSpec,
    MissingValues,
    SilhouetteScore,
)
from crm_segment.clusters.rules import feature_profiles, label
from crm_segment.clusters.tables import clustering_run
from crm_segment.segments.rules import SQL_COLUMNS
from crmkit.operations import FAILED, SUCCEEDED

# Completed runs whose per-customer assignments are kept (the newest is the `cluster_id`
# feature; the few before it let an analyst compare); older runs keep their profiles only.
KEPT_ASSIGNMENT_RUNS = 3

_RUN = f"""
    SELECT r.*, CASE WHEN r.completed_at IS NOT NULL THEN {int(SUCCEEDED)}
                     ELSE coalesce(o.state, {int(FAILED)}) END AS state,
           coalesce(r.completed_at, o.end_time) AS ended_at
    FROM clustering_run r LEFT JOIN operation o ON o.operation_id = r.operation_id"""  # noqa: S608 - fixed text


async def insert_run(uow: AsyncConnection, *, run_id: uuid.UUID, operation_id: uuid.UUID, spec: ClusteringSpec,
                     creator: str) -> None:
    await uow.execute(sa.insert(clustering_run).values(
        run_id=run_id, operation_id=operation_id, display_name=spec.display_name, features=list(spec.features),
        population_segment_id=spec.population_segment_id, requested_cluster_count=spec.cluster_count,
        min_cluster_count=spec.min_cluster_count, max_cluster_count=spec.max_cluster_count,
        missing_values=int(spec.missing_values), random_seed=spec.random_seed, creator=creator))


async def get_run(connection: asyncpg.Connection, run_id: uuid.UUID) -> ClusteringRun | None:
    row = await connection.fetchrow(f"{_RUN} WHERE r.run_id = $1", run_id)
    return None if row is None else _run_of(row)


async def clusters_page(connection: asyncpg.Connection, run: ClusteringRun, *, after: int | None,
                        limit: int) -> list[Cluster]:
    rows = await connection.fetch(
        "SELECT * FROM cluster WHERE run_id = $1 AND cluster_id > $2 ORDER BY cluster_id LIMIT $3",
        uuid.UUID(run.run_id), after or 0, limit)
    clusters = []
    for row in rows:
        profiles = feature_profiles(run.spec.features, row["centroid"], run.feature_means,
                                    run.feature_standard_deviations)
        distinguishing = tuple(row["distinguishing_features"])
        clusters.append(Cluster(cluster_id=row["cluster_id"], size=row["size"], share=row["share"],
                                label=label(profiles, distinguishing), feature_profiles=profiles,
                                distinguishing_features=distinguishing))
    return clusters


async def population_values(connection: asyncpg.Connection, spec: ClusteringSpec
                            ) -> tuple[tuple[str, ...], tuple[tuple[float | None, ...], ...]]:
    """(customer ids, their values of the run's features) over the run's population, in
    customer order. The expressions are the catalogue's own (`SQL_COLUMNS`): fixed text."""
    values = ", ".join(f"({SQL_COLUMNS[f]})::double precision" for f in spec.features)
    if spec.population_segment_id:
        rows = await connection.fetch(
            f"""SELECT cf.customer_id, {values} FROM customer_feature cf
                JOIN segment_member sm ON sm.customer_id = cf.customer_id AND sm.segment_id = $1
                WHERE NOT cf.removed ORDER BY cf.customer_id""",  # noqa: S608 - catalogue expressions, fixed text
            spec.population_segment_id)
    else:
        rows = await connection.fetch(
            f"SELECT cf.customer_id, {values} FROM customer_feature cf "  # noqa: S608 - catalogue expressions
            "WHERE NOT cf.removed ORDER BY cf.customer_id")
    return tuple(row[0] for row in rows), tuple(tuple(row[1:]) for row in rows)


async def record_outcome(connection: asyncpg.Connection, run_id: uuid.UUID, result: ClusteringResult,
                         customer_ids: Sequence[str], features_as_of: datetime | None,
                         clusters: Sequence[Cluster]) -> None:
    """The run's outcome, clusters and assignments; older runs' assignments beyond the kept few
    go."""
    await connection.execute(
        """UPDATE clustering_run SET completed_at = now(), cluster_count = $2, customer_count = $3,
                  excluded_count = $4, silhouette_score = $5, silhouette_scores = $6::jsonb,
                  silhouette_sampled = $7, run_version = $8, feature_means = $9, feature_standard_deviations = $10,
                  features_as_of = $11
           WHERE run_id = $1""",
        run_id, result.cluster_count, result.clustered_count, result.unassigned_count, result.silhouette,
        json.dumps([[s.cluster_count, s.score] for s in result.silhouette_by_cluster_count]),
        result.silhouette_sampled, result.run_version, list(result.feature_means),
        list(result.feature_standard_deviations), features_as_of)
    await connection.executemany(
        """INSERT INTO cluster (run_id, cluster_id, size, share, centroid, distinguishing_features)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [(run_id, c.cluster_id, c.size, c.share, [_centroid_of(c, f) for f in result.features],
          list(c.distinguishing_features)) for c in clusters])
    await connection.copy_records_to_table(
        "cluster_assignment", columns=("run_id", "customer_id", "cluster_id"),
        records=((run_id, customer, label_ + 1) for customer, label_ in zip(customer_ids, result.labels, strict=True)
                 if label_ >= 0))
    await connection.execute(
        """DELETE FROM cluster_assignment WHERE run_id IN (
               SELECT run_id FROM clustering_run WHERE completed_at IS NOT NULL
               ORDER BY completed_at DESC, run_id OFFSET $1)""", KEPT_ASSIGNMENT_RUNS)


def _centroid_of(cluster: Cluster, feature: str) -> float:
    (profile,) = (p for p in cluster.feature_profiles if p.feature == feature)
    return profile.mean


def _run_of(row: Any) -> ClusteringRun:
    spec = ClusteringSpec(
        display_name=row["display_name"], features=tuple(row["features"]),
        cluster_count=row["requested_cluster_count"], min_cluster_count=row["min_cluster_count"],
        max_cluster_count=row["max_cluster_count"], missing_values=MissingValues(row["missing_values"]),
        random_seed=row["random_seed"], population_segment_id=row["population_segment_id"])
    return ClusteringRun(
        run_id=str(row["run_id"]), operation_id=str(row["operation_id"]), state=row["state"], spec=spec,
        creator=row["creator"], created_at=row["created_at"], completed_at=row["completed_at"],
        ended_at=row["ended_at"], cluster_count=row["cluster_count"], customer_count=row["customer_count"],
        excluded_count=row["excluded_count"], silhouette_score=row["silhouette_score"],
        silhouette_scores=tuple(SilhouetteScore(cluster_count=k, score=s)
                                for k, s in json.loads(row["silhouette_scores"])),
        silhouette_sampled=row["silhouette_sampled"], run_version=row["run_version"],
        feature_means=tuple(row["feature_means"]),
        feature_standard_deviations=tuple(row["feature_standard_deviations"]),
        features_as_of=row["features_as_of"])
