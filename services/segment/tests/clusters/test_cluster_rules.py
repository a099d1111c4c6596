"""Clustering rules: validation, obvious hand-made clusters, and the real churn customers."""

from __future__ import annotations

import csv
import math
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from functools import cache

import numpy as np
import pytest

from crm_segment.clusters import rules
from crm_segment.clusters.model import (
    UNASSIGNED,
    ClusteringRequest,
    Direction,
    MissingValues,
    TooFewCustomers,
)
from crmkit.errors import InvalidArgument
from crmkit.testing import shared_data_dir

CHURN_FEATURES = ("CreditScore", "Age", "Tenure", "Balance", "NumOfProducts", "EstimatedSalary")


def request(values: list[tuple[float | None, ...]], features: tuple[str, ...] = ("aum", "age"),
            **overrides: object) -> ClusteringRequest:
    fields: dict[str, object] = {"customer_ids": tuple(f"c{i}" for i in range(len(values))),
                                 "features": features, "values": tuple(values)}
    fields.update(overrides)
    return ClusteringRequest(**fields)  # type: ignore[arg-type]


# Three tight groups far apart, in very different units: (aum CNY, age years).
RICH_OLD = [(900_000.0 + d * 1_000, 70.0 + d) for d in range(-3, 4)]
POOR_YOUNG = [(1_000.0 + d * 100, 22.0 + d % 2) for d in range(5)]
MIDDLE = [(200_000.0 + d * 2_000, 45.0 - d) for d in range(4)]
THREE_GROUPS = RICH_OLD + POOR_YOUNG + MIDDLE


def bad_fields(candidate: ClusteringRequest) -> set[str]:
    with pytest.raises(InvalidArgument) as caught:
        rules.cluster(candidate)
    return {v.field for v in caught.value.violations}


def test_obvious_groups_are_found_and_k_chosen_by_silhouette() -> None:
    result = rules.cluster(request(THREE_GROUPS, cluster_count=0, min_cluster_count=2, max_cluster_count=6))

    assert result.cluster_count == 3
    labels = result.labels
    groups = [labels[:7], labels[7:12], labels[12:]]
    assert all(len(set(g)) == 1 for g in groups)
    assert len({g[0] for g in groups}) == 3
    # Largest cluster first: the seven rich, older customers are cluster 0.
    assert groups[0][0] == 0
    assert [p.size for p in result.profiles] == [7, 5, 4]
    assert [s.cluster_count for s in result.silhouette_by_cluster_count] == [2, 3, 4, 5, 6]
    assert result.silhouette == max(s.score for s in result.silhouette_by_cluster_count) > 0.8


def test_profiles_are_in_original_units_and_name_what_sets_a_cluster_apart() -> None:
    result = rules.cluster(request(THREE_GROUPS, cluster_count=3))

    rich, young, _ = result.profiles
    assert rich.centroid == pytest.approx((900_000.0, 70.0))
    assert young.centroid == pytest.approx((1_200.0, 22.4))
    assert rich.share == pytest.approx(7 / 16)
    assert {(d.feature, d.direction) for d in rich.distinguishing_features} == {
        ("aum", Direction.HIGHER), ("age", Direction.HIGHER)}
    assert {(d.feature, d.direction) for d in young.distinguishing_features} == {
        ("aum", Direction.LOWER), ("age", Direction.LOWER)}
    distances = [abs(d.standardised_distance) for d in rich.distinguishing_features]
    assert distances == sorted(distances, reverse=True)


def test_scaling_stops_the_feature_with_the_largest_units_deciding_alone() -> None:
    # Two groups split by age only; AUM is noise ten thousand times wider than age's spread.
    rng = np.random.default_rng(7)
    values = [(float(rng.uniform(0, 20_000)), 25.0 + rng.uniform(0, 1)) for _ in range(20)]
    values += [(float(rng.uniform(0, 20_000)), 65.0 + rng.uniform(0, 1)) for _ in range(20)]

    result = rules.cluster(request(values, cluster_count=2))

    assert len(set(result.labels[:20])) == 1 and len(set(result.labels[20:])) == 1
    assert result.labels[0] != result.labels[20]


def test_missing_values_are_dropped_or_imputed_as_asked() -> None:
    values: list[tuple[float | None, ...]] = [*THREE_GROUPS, (None, 70.0), (float("nan"), 22.0)]

    dropped = rules.cluster(request(values, cluster_count=3))
    imputed = rules.cluster(request(values, cluster_count=3, missing_values=MissingValues.IMPUTE_MEDIAN))

    assert dropped.labels[-2:] == (UNASSIGNED, UNASSIGNED)
    assert (dropped.clustered_count, dropped.unassigned_count) == (16, 2)
    assert sum(p.size for p in dropped.profiles) == 16
    assert UNASSIGNED not in imputed.labels and imputed.unassigned_count == 0
    assert sum(p.size for p in imputed.profiles) == 18
    assert dropped.cluster_of(tuple(f"c{i}" for i in range(18))).keys() == {f"c{i}" for i in range(16)}


def test_fewer_customers_than_clusters_is_a_failed_precondition_with_a_clear_message() -> None:
    with pytest.raises(TooFewCustomers, match="cannot form 5 clusters from 4 customers"):
        rules.cluster(request(THREE_GROUPS[:4], cluster_count=5))
    # Enough rows but fewer distinct ones than k.
    with pytest.raises(TooFewCustomers, match=r"\(2 distinct\)"):
        rules.cluster(request([(1.0, 2.0)] * 5 + [(3.0, 4.0)] * 5, cluster_count=3))
    # Choosing k: the smallest k the range allows must fit.
    with pytest.raises(TooFewCustomers) as caught:
        rules.cluster(request(THREE_GROUPS[:3], min_cluster_count=3, max_cluster_count=5))
    assert caught.value.reason == "TOO_FEW_CUSTOMERS"
    assert caught.value.code.name == "FAILED_PRECONDITION"


def test_choosing_k_stops_at_what_the_data_can_hold() -> None:
    result = rules.cluster(request(THREE_GROUPS[:5], min_cluster_count=2, max_cluster_count=8))
    assert [s.cluster_count for s in result.silhouette_by_cluster_count] == [2, 3, 4]


def test_errors_and_results_survive_pickling_for_the_worker_process() -> None:
    result = rules.cluster(request(THREE_GROUPS, cluster_count=3))
    assert pickle.loads(pickle.dumps(result)) == result  # noqa: S301 - our own bytes
    error = pickle.loads(pickle.dumps(TooFewCustomers("cannot form 5 clusters")))  # noqa: S301 - our own bytes
    assert (type(error), str(error), error.reason) == (TooFewCustomers, "cannot form 5 clusters", "TOO_FEW_CUSTOMERS")


@pytest.mark.slow  # a spawned interpreter imports scikit-learn afresh: seconds on a busy host
def test_runs_in_a_spawned_worker_process() -> None:
    """As `crmkit.operations` will run it: a top-level function, its argument and result pickled."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        result = pool.submit(rules.cluster, request(THREE_GROUPS, cluster_count=3)).result(timeout=120)
        with pytest.raises(TooFewCustomers):
            pool.submit(rules.cluster, request(THREE_GROUPS[:2], cluster_count=3)).result(timeout=120)
    assert result == rules.cluster(request(THREE_GROUPS, cluster_count=3))


@pytest.mark.parametrize(("overrides", "fields"), [
    ({"features": ()}, {"features", "values"}),
    ({"features": ("aum", "aum")}, {"features"}),
    ({"features": ("aum", "")}, {"features"}),
    ({"cluster_count": 1}, {"cluster_count"}),
    ({"cluster_count": 21}, {"cluster_count"}),
    ({"cluster_count": -1}, {"cluster_count"}),
    ({"min_cluster_count": 1}, {"min_cluster_count"}),
    ({"min_cluster_count": 5, "max_cluster_count": 4}, {"max_cluster_count"}),
    ({"max_cluster_count": 21}, {"max_cluster_count"}),
    ({"missing_values": MissingValues.UNSPECIFIED}, {"missing_values"}),
    ({"missing_values": 9}, {"missing_values"}),
    ({"random_state": -1}, {"random_state"}),
    ({"customer_ids": ("a",) * 16}, {"customer_ids"}),
    ({"customer_ids": ("a", "b")}, {"values"}),
])
def test_bad_requests_name_the_field(overrides: dict[str, object], fields: set[str]) -> None:
    assert bad_fields(request(THREE_GROUPS, **overrides)) == fields


def test_ragged_rows_and_infinite_values_are_rejected() -> None:
    assert bad_fields(request([(1.0, 2.0), (1.0,)])) == {"values"}
    assert bad_fields(request([(1.0, 2.0), (math.inf, 3.0), (1.0, 5.0)])) == {"values"}


def test_the_run_version_follows_what_decides_the_result() -> None:
    base = rules.cluster(request(THREE_GROUPS, cluster_count=3))
    again = rules.cluster(request(THREE_GROUPS, cluster_count=3))
    other_k = rules.cluster(request(THREE_GROUPS, cluster_count=2))
    other_data = rules.cluster(request([*THREE_GROUPS[:-1], (200_001.0, 45.0)], cluster_count=3))
    other_seed = rules.cluster(request(THREE_GROUPS, cluster_count=3, random_state=1))

    assert again.run_version == base.run_version and again.labels == base.labels
    assert len({base.run_version, other_k.run_version, other_data.run_version, other_seed.run_version}) == 4
    assert other_data.data_fingerprint != base.data_fingerprint
    assert other_seed.data_fingerprint == base.data_fingerprint


@cache
def churn_request() -> ClusteringRequest:
    path = shared_data_dir("Churn_Modelling.csv") / "Churn_Modelling.csv"
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return ClusteringRequest(
        customer_ids=tuple(row["CustomerId"] for row in rows),
        features=CHURN_FEATURES,
        values=tuple(tuple(float(row[f]) for f in CHURN_FEATURES) for row in rows),
        min_cluster_count=2, max_cluster_count=8, random_state=42)


@pytest.mark.slow
def test_churn_customers_k_by_silhouette_is_stable_and_profiles_are_in_original_units() -> None:
    churn = churn_request()
    first = rules.cluster(churn)
    second = rules.cluster(churn)

    assert first.cluster_count == second.cluster_count
    assert first.labels == second.labels and first.run_version == second.run_version
    assert [s.cluster_count for s in first.silhouette_by_cluster_count] == list(range(2, 9))
    assert first.silhouette_sampled
    assert sum(p.size for p in first.profiles) == len(churn.customer_ids) == 10_000
    assert sum(p.share for p in first.profiles) == pytest.approx(1.0)
    age = CHURN_FEATURES.index("Age")
    products = CHURN_FEATURES.index("NumOfProducts")
    for profile in first.profiles:
        assert 18 <= profile.centroid[age] <= 92
        assert 1 <= profile.centroid[products] <= 4
    assert first.silhouette == max(s.score for s in first.silhouette_by_cluster_count)
    ages = [row[age] for row in churn.values]
    assert first.feature_means[age] == pytest.approx(sum(ages) / len(ages))  # type: ignore[arg-type]
