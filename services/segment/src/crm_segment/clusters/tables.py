"""Clustering runs, their clusters' profiles, and which cluster each customer fell in.

A run row is written PENDING-like (`completed_at` NULL) when the run is started; the worker fills
in the outcome, the clusters and the assignments and completes the operation in one
transaction, so a run is either complete with all its parts or has none of them (its state
then comes from its operation). Assignments are kept for the newest `KEPT_ASSIGNMENT_RUNS`
completed runs only; profiles for every run (`clusters.repository`).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_segment.tables import metadata

clustering_run = sa.Table(
    "clustering_run",
    metadata,
    sa.Column("run_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("operation_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("features", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("population_segment_id", sa.Text, nullable=False, server_default=""),
    sa.Column("requested_cluster_count", sa.SmallInteger, nullable=False),
    sa.Column("min_cluster_count", sa.SmallInteger, nullable=False),
    sa.Column("max_cluster_count", sa.SmallInteger, nullable=False),
    # crm.segment.v1.ClusteringMissingValues numbers.
    sa.Column("missing_values", sa.SmallInteger, nullable=False),
    sa.Column("random_seed", sa.BigInteger, nullable=False),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # The outcome, set when the run completes.
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("cluster_count", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("customer_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("excluded_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("silhouette_score", sa.Float, nullable=False, server_default="0"),
    # [[k, score], ...] for every k tried.
    sa.Column("silhouette_scores", pg.JSONB, nullable=False, server_default="[]"),
    sa.Column("silhouette_sampled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("run_version", sa.Text, nullable=False, server_default=""),
    sa.Column("feature_means", pg.ARRAY(sa.Float), nullable=False, server_default="{}"),
    sa.Column("feature_standard_deviations", pg.ARRAY(sa.Float), nullable=False, server_default="{}"),
    sa.Column("features_as_of", sa.DateTime(timezone=True)),
    sa.Index("ix_clustering_run_completed", sa.text("completed_at DESC"), "run_id",
             postgresql_where=sa.text("completed_at IS NOT NULL")),
)

cluster = sa.Table(
    "cluster",
    metadata,
    sa.Column("run_id", pg.UUID(as_uuid=True), sa.ForeignKey("clustering_run.run_id", ondelete="CASCADE"),
              primary_key=True),
    # 1..k, largest first.
    sa.Column("cluster_id", sa.SmallInteger, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    # The members' mean per feature, in the run's feature order and the features' own units.
    sa.Column("centroid", pg.ARRAY(sa.Float), nullable=False),
    sa.Column("distinguishing_features", pg.ARRAY(sa.Text), nullable=False),
)

cluster_assignment = sa.Table(
    "cluster_assignment",
    metadata,
    sa.Column("run_id", pg.UUID(as_uuid=True), sa.ForeignKey("clustering_run.run_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("cluster_id", sa.SmallInteger, nullable=False),
)
