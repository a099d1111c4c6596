"""Clustering runs as the service's code sees them: plain, picklable values (they cross into and
out of a spawned worker process), no protos and no numpy in the results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from crmkit.errors import FailedPrecondition

# A customer's label when the run could not place them (a missing value under DROP).
UNASSIGNED = -1


class MissingValues(IntEnum):
    """What a run does with a customer that lacks one of the chosen features."""

    UNSPECIFIED = 0
    # Leave the customer out: no cluster (UNASSIGNED), not counted in sizes or profiles.
    DROP = 1
    # Fill with the feature's median over the customers that have it, then cluster everyone.
    IMPUTE_MEDIAN = 2


class Direction(IntEnum):
    HIGHER = 1
    LOWER = 2


@dataclass(frozen=True)
class ClusteringRequest:
    """Rows are customers, columns `features`; None or NaN is a missing value.

    `cluster_count` 0 picks k by silhouette within `min_cluster_count..max_cluster_count`."""

    customer_ids: tuple[str, ...]
    features: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...]
    cluster_count: int = 0
    min_cluster_count: int = 2
    max_cluster_count: int = 8
    missing_values: MissingValues = MissingValues.DROP
    random_state: int = 0


@dataclass(frozen=True)
class FeatureDeviation:
    """How far a cluster's centroid sits from the overall mean, in standard deviations."""

    feature: str
    standardised_distance: float
    direction: Direction


@dataclass(frozen=True)
class ClusterProfile:
    cluster_id: int
    size: int
    share: float
    # The members' mean of each feature, in the feature's own units (years, CNY, ...).
    centroid: tuple[float, ...]
    # The features that set the cluster apart, largest distance first.
    distinguishing_features: tuple[FeatureDeviation, ...]


@dataclass(frozen=True)
class SilhouetteScore:
    cluster_count: int
    score: float


@dataclass(frozen=True)
class ClusteringResult:
    features: tuple[str, ...]
    cluster_count: int
    # Aligned with the request's customer_ids; UNASSIGNED for customers left out.
    labels: tuple[int, ...]
    # Largest cluster first: cluster ids are 0..k-1 in that order.
    profiles: tuple[ClusterProfile, ...]
    silhouette: float
    # Every k tried when the run chose k itself (one entry when the caller fixed it).
    silhouette_by_cluster_count: tuple[SilhouetteScore, ...]
    # True when the silhouette was estimated on a seeded sample of customers (large runs).
    silhouette_sampled: bool
    # The clustered customers' mean and standard deviation per feature, original units.
    feature_means: tuple[float, ...]
    feature_standard_deviations: tuple[float, ...]
    clustered_count: int
    unassigned_count: int
    # Hash of the customers and their values: the same data gives the same fingerprint.
    data_fingerprint: str
    # Hash of everything that decides the outcome (features, k, policy, seed, data).
    run_version: str

    def cluster_of(self, customer_ids: tuple[str, ...]) -> dict[str, int]:
        """Customer id -> cluster id for the clustered customers (pass the request's ids)."""
        return {c: label for c, label in zip(customer_ids, self.labels, strict=True) if label != UNASSIGNED}


class TooFewCustomers(FailedPrecondition):
    """The data cannot hold the asked-for number of clusters: fewer (distinct) customers than k."""

    def __init__(self, message: str) -> None:
        super().__init__(message=message, reason="TOO_FEW_CUSTOMERS")


# --- served runs ---------------------------------------------------------------------------------

KIND = "segment.clustering"


@dataclass(frozen=True)
class ClusteringSpec:
    """What a caller asked for, checked (`rules.check_start`), defaults filled in."""

    display_name: str
    features: tuple[str, ...]
    cluster_count: int
    # Both 0 when cluster_count is given.
    min_cluster_count: int
    max_cluster_count: int
    missing_values: MissingValues
    # 0 until the service draws one.
    random_seed: int
    population_segment_id: str


@dataclass(frozen=True)
class ClusteringJob:
    """What the worker process gets: the run to compute and where its data is."""

    run_id: str
    operation_id: str
    database_url: str
    spec: ClusteringSpec
    # The finished run -> the operation's response (a module-level function of the API layer,
    # so it pickles and this module stays free of generated messages).
    result_message: Callable[[ClusteringRun], Any]


@dataclass(frozen=True)
class FeatureProfile:
    feature: str
    mean: float
    population_mean: float
    population_standard_deviation: float
    standardised_difference: float


@dataclass(frozen=True)
class Cluster:
    """One stored cluster; `cluster_id` 1..k, largest first."""

    cluster_id: int
    size: int
    share: float
    label: str
    # One per clustered feature, largest absolute standardised difference first.
    feature_profiles: tuple[FeatureProfile, ...]
    distinguishing_features: tuple[str, ...]


@dataclass(frozen=True)
class ClusteringRun:
    """A stored run; the outcome fields are zero and `completed_at` None until it completes."""

    run_id: str
    operation_id: str
    # crm.common.v1.OperationState number: SUCCEEDED once completed, else its operation's state.
    state: int
    spec: ClusteringSpec
    creator: str
    created_at: datetime
    completed_at: datetime | None
    # When the run ended (completed, failed or cancelled); None while it runs.
    ended_at: datetime | None
    cluster_count: int
    customer_count: int
    excluded_count: int
    silhouette_score: float
    silhouette_scores: tuple[SilhouetteScore, ...]
    silhouette_sampled: bool
    run_version: str
    feature_means: tuple[float, ...]
    feature_standard_deviations: tuple[float, ...]
    features_as_of: datetime | None
