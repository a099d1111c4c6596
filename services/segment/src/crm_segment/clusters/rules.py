"""k-means clustering of customers over chosen numeric features. Pure: no I/O.

`cluster` is a plain top-level function of one picklable request, so the service runs it in a
spawned worker (`crmkit.operations`), never on the event loop.

Scaling: k-means measures plain Euclidean distance, so unscaled a balance in CNY (spread ~60,000)
would decide every assignment and an age (spread ~10) none. Each feature is standardised to mean
0 and unit variance (StandardScaler) so each weighs the same; a constant feature scales by 1 and
so adds nothing. Profiles are reported back in the features' own units.

Missing values: `MissingValues.DROP` (the default) leaves out a customer lacking any chosen
feature: they get no cluster rather than one decided by an invented value. `IMPUTE_MEDIAN` fills
the gap with the feature's median first (robust to the skew of money features), which places
everyone but pulls the imputed customers towards the middle. Infinite values are bad input.

Choosing k: with `cluster_count` 0, every k in min..max is fitted and the one with the highest
silhouette wins (ties: the smaller k). Silhouette costs O(n^2); above SILHOUETTE_SAMPLE customers it
is estimated on one seeded sample of that many, the same customers for every k (on the 10,000
churn customers the estimate is within 0.003 of the exact score).

Threads: a run uses one thread. The worker pool is the unit of parallelism, and on a busy host
k-means' OpenMP threads spin waiting for each other: on the 10,000 churn customers, 2 threads took
17 s of CPU (51 s wall) against 3.4 s (8 s) for one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from crm_segment.clusters.model import (
    UNASSIGNED,
    Cluster,
    ClusteringRequest,
    ClusteringResult,
    ClusteringSpec,
    ClusterProfile,
    Direction,
    FeatureDeviation,
    FeatureProfile,
    MissingValues,
    SilhouetteScore,
    TooFewCustomers,
)
from crm_segment.segments import catalogue
from crm_segment.segments.model import FeatureType
from crm_segment.segments.rules import CATALOGUE, FEATURES
from crmkit.validation import Violations

if TYPE_CHECKING:
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

MIN_CLUSTER_COUNT = 2
MAX_CLUSTER_COUNT = 20
MAX_FEATURES = 50
SILHOUETTE_SAMPLE = 5_000
# Restarts per k: k-means finds a local optimum, the best of 10 seeded starts is stable.
K_MEANS_RESTARTS = 10
# A profile lists at most this many features, each at least this far (in standard deviations)
# from the overall mean: about a "small" effect; nearer than that does not set a cluster apart.
TOP_FEATURES = 3
MIN_DEVIATION = 0.2
_VERSION_SCHEME = "kmeans-v1"

Matrix = npt.NDArray[np.float64]


def validate(request: ClusteringRequest) -> None:
    """InvalidArgument naming every bad field of the request."""
    v = Violations()
    features = request.features
    if v.check(bool(features), "features", "is required: name at least one numeric feature"):
        v.check(len(features) <= MAX_FEATURES, "features", f"must name at most {MAX_FEATURES} features")
        v.check(all(features), "features", "must not contain an empty name")
        v.check(len(set(features)) == len(features), "features", "must not name a feature twice")
    v.check(len(set(request.customer_ids)) == len(request.customer_ids), "customer_ids",
            "must not repeat a customer")
    v.check(len(request.values) == len(request.customer_ids), "values", "must hold one row per customer")
    v.check(all(len(row) == len(features) for row in request.values), "values",
            "every row must hold one value per feature")
    v.enum(request.missing_values, "missing_values", set(MissingValues) - {MissingValues.UNSPECIFIED},
           "MissingValues", required=True)
    if request.cluster_count == 0:
        low, high = request.min_cluster_count, request.max_cluster_count
        v.check(MIN_CLUSTER_COUNT <= low <= MAX_CLUSTER_COUNT, "min_cluster_count",
                f"must be between {MIN_CLUSTER_COUNT} and {MAX_CLUSTER_COUNT} when cluster_count is 0")
        v.check(MIN_CLUSTER_COUNT <= high <= MAX_CLUSTER_COUNT, "max_cluster_count",
                f"must be between {MIN_CLUSTER_COUNT} and {MAX_CLUSTER_COUNT} when cluster_count is 0")
        v.check(low <= high, "max_cluster_count", "must be at least min_cluster_count")
    else:
        v.check(MIN_CLUSTER_COUNT <= request.cluster_count <= MAX_CLUSTER_COUNT, "cluster_count",
                f"must be 0 (choose by silhouette) or between {MIN_CLUSTER_COUNT} and {MAX_CLUSTER_COUNT}")
    v.check(request.random_state >= 0, "random_state", "must not be negative")
    v.raise_if_any()
    # Only now is the shape known to be rectangular.
    matrix = np.asarray(request.values, dtype=np.float64).reshape(len(request.values), len(features))
    v.check(not np.isinf(matrix).any(), "values", "must be finite numbers or missing (None, NaN)")
    v.raise_if_any()


def cluster(request: ClusteringRequest) -> ClusteringResult:
    """Cluster the request's customers; InvalidArgument for a bad request, TooFewCustomers when the
    data cannot hold k clusters."""
    validate(request)
    with threadpool_limits(limits=1):
        return _cluster(request)


def _cluster(request: ClusteringRequest) -> ClusteringResult:
    # scikit-learn is imported here, in the worker that runs the clustering: at module level it
    # cost every segment process (and every test that starts one) seconds of start-up.
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    raw = np.asarray(request.values, dtype=np.float64).reshape(len(request.values), len(request.features))
    rows, data = _complete_rows(raw, request.missing_values)
    candidates = _candidate_counts(request, data)
    scaler = StandardScaler().fit(data)
    scaled = scaler.transform(data)
    sampled = len(scaled) > SILHOUETTE_SAMPLE
    scores: list[SilhouetteScore] = []
    best: tuple[float, KMeans] | None = None
    for k in candidates:
        model = KMeans(n_clusters=k, n_init=K_MEANS_RESTARTS, random_state=request.random_state).fit(scaled)
        score = _silhouette(scaled, model.labels_, request.random_state)
        scores.append(SilhouetteScore(cluster_count=k, score=score))
        if best is None or score > best[0]:  # strict: a tie keeps the smaller k
            best = (score, model)
    assert best is not None  # candidates is never empty
    silhouette, model = best
    labels = _by_size(np.asarray(model.labels_))
    k = int(model.n_clusters)
    all_labels = np.full(len(raw), UNASSIGNED, dtype=np.int64)
    all_labels[rows] = labels
    data_fingerprint = fingerprint(request.customer_ids, raw)
    return ClusteringResult(
        features=request.features,
        cluster_count=k,
        labels=tuple(all_labels.tolist()),
        profiles=_profiles(request.features, data, labels, k, scaler),
        silhouette=silhouette,
        silhouette_by_cluster_count=tuple(scores),
        silhouette_sampled=sampled,
        feature_means=tuple(scaler.mean_.tolist()),
        feature_standard_deviations=tuple(scaler.scale_.tolist()),
        clustered_count=len(data),
        unassigned_count=len(raw) - len(data),
        data_fingerprint=data_fingerprint,
        run_version=run_version(request, k, data_fingerprint),
    )


def _complete_rows(raw: Matrix, policy: MissingValues) -> tuple[npt.NDArray[np.intp], Matrix]:
    """(indices of the rows clustered, their values) after the missing-value policy."""
    missing = np.isnan(raw)
    if policy == MissingValues.DROP:
        rows = np.flatnonzero(~missing.any(axis=1))
        return rows, raw[rows]
    filled = raw.copy()
    for column in np.flatnonzero(missing.any(axis=0)):
        present = raw[~missing[:, column], column]
        # A feature nobody has cannot be imputed; 0 makes it a constant, which scaling ignores.
        filled[missing[:, column], column] = np.median(present) if len(present) else 0.0
    return np.arange(len(raw)), filled


def _candidate_counts(request: ClusteringRequest, data: Matrix) -> range:
    """The k to try; TooFewCustomers when the data cannot hold them."""
    customers = len(data)
    distinct = len(np.unique(data, axis=0)) if customers else 0
    if request.cluster_count:
        k = request.cluster_count
        # Silhouette needs 2 <= k <= n - 1, and k-means k distinct points.
        if customers <= k or distinct < k:
            raise TooFewCustomers(f"cannot form {k} clusters from {_described(customers, distinct)}: "
                                  f"need at least {k + 1} customers with {k} distinct feature values")
        return range(k, k + 1)
    low, high = request.min_cluster_count, request.max_cluster_count
    high = min(high, customers - 1, distinct)
    if high < low:
        raise TooFewCustomers(f"cannot form even {low} clusters from {_described(customers, distinct)}: "
                              f"need at least {low + 1} customers with {low} distinct feature values")
    return range(low, high + 1)


def _described(customers: int, distinct: int) -> str:
    return f"{customers} customers ({distinct} distinct) with every feature present"


def _silhouette(scaled: Matrix, labels: npt.NDArray[np.int32], random_state: int) -> float:
    from sklearn.metrics import silhouette_score

    sample = SILHOUETTE_SAMPLE if len(scaled) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(scaled, labels, sample_size=sample, random_state=random_state))


def _by_size(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """k-means numbers clusters arbitrarily; renumber largest first (ties: k-means' order) so
    cluster 0 means the same thing across reports of one run."""
    sizes = np.bincount(labels)
    order = np.argsort(-sizes, kind="stable")
    renumber = np.empty_like(order)
    renumber[order] = np.arange(len(order))
    return renumber[labels].astype(np.int64)


def _profiles(features: tuple[str, ...], data: Matrix, labels: npt.NDArray[np.int64], k: int,
              scaler: StandardScaler) -> tuple[ClusterProfile, ...]:
    profiles = []
    for cluster_id in range(k):
        members = data[labels == cluster_id]
        centroid = members.mean(axis=0)
        distance = (centroid - scaler.mean_) / scaler.scale_
        ranked = [i for i in np.argsort(-np.abs(distance), kind="stable")[:TOP_FEATURES]
                  if abs(distance[i]) >= MIN_DEVIATION]
        profiles.append(ClusterProfile(
            cluster_id=cluster_id,
            size=len(members),
            share=len(members) / len(data),
            centroid=tuple(centroid.tolist()),
            distinguishing_features=tuple(
                FeatureDeviation(feature=features[i], standardised_distance=float(distance[i]),
                                 direction=Direction.HIGHER if distance[i] > 0 else Direction.LOWER)
                for i in ranked),
        ))
    return tuple(profiles)


def fingerprint(customer_ids: tuple[str, ...], values: Matrix) -> str:
    """SHA-256 of the customers and their values in order (NaN hashed as NaN)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(customer_ids).encode())
    digest.update(b"\x1e")
    digest.update(str(values.shape).encode())
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()


def run_version(request: ClusteringRequest, cluster_count: int, data_fingerprint: str) -> str:
    """A short hash of everything that decides the result: equal versions, equal clusters."""
    parts = (_VERSION_SCHEME, "\x1f".join(request.features), str(cluster_count), str(request.cluster_count),
             f"{request.min_cluster_count}-{request.max_cluster_count}", MissingValues(request.missing_values).name,
             str(request.random_state), data_fingerprint)
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:16]


# --- serving runs: what a caller may ask for, and what a stored run shows -----------------------

MAX_DISPLAY_NAME = 100
DEFAULT_MIN_CLUSTER_COUNT = 2
DEFAULT_MAX_CLUSTER_COUNT = 8
# k-means' seed is a 32-bit unsigned integer.
MAX_RANDOM_SEED = 2**32 - 1
# The feature the runs produce cannot be an input to them.
CLUSTER_FEATURE = "cluster_id"
_NUMERIC = frozenset({FeatureType.INT, FeatureType.DOUBLE})


def check_start(*, display_name: str, features: Sequence[str], cluster_count: int, min_cluster_count: int,
                max_cluster_count: int, missing_values: int, random_seed: int,
                population_segment_id: str) -> ClusteringSpec:
    """The run a StartClustering request describes, defaults filled in; InvalidArgument naming
    every bad field (features must be numeric catalogue features the read model holds)."""
    v = Violations()
    if v.required(display_name, "display_name") and v.max_length(display_name, "display_name", MAX_DISPLAY_NAME):
        v.text(display_name, "display_name")
    if v.check(bool(features), "features", "is required: name at least one numeric feature"):
        v.check(len(features) <= MAX_FEATURES, "features", f"must name at most {MAX_FEATURES} features")
        v.check(len(set(features)) == len(features), "features", "must not name a feature twice")
    unfed = catalogue.unfed(FEATURES)
    for i, name in enumerate(features):
        feature = CATALOGUE.get(name)
        if feature is None:
            v.add(f"features[{i}]", f"unknown feature {name!r}: see ListFeatures")
        elif feature.type not in _NUMERIC:
            v.add(f"features[{i}]", f"feature {name!r} is not numeric (FEATURE_TYPE_INT or FEATURE_TYPE_DOUBLE)")
        elif name == CLUSTER_FEATURE:
            v.add(f"features[{i}]", "cluster_id is what a run produces, it cannot be clustered on")
        elif name in unfed:
            v.add(f"features[{i}]", f"feature {name!r} is not held by the read model yet (its feed is not followed)")
    if cluster_count == 0:
        low = min_cluster_count or DEFAULT_MIN_CLUSTER_COUNT
        high = max_cluster_count or DEFAULT_MAX_CLUSTER_COUNT
        v.check(MIN_CLUSTER_COUNT <= low <= MAX_CLUSTER_COUNT, "min_cluster_count",
                f"must be 0 (meaning {DEFAULT_MIN_CLUSTER_COUNT}) or between {MIN_CLUSTER_COUNT} and "
                f"{MAX_CLUSTER_COUNT}")
        v.check(MIN_CLUSTER_COUNT <= high <= MAX_CLUSTER_COUNT, "max_cluster_count",
                f"must be 0 (meaning {DEFAULT_MAX_CLUSTER_COUNT}) or between {MIN_CLUSTER_COUNT} and "
                f"{MAX_CLUSTER_COUNT}")
        v.check(low <= high, "max_cluster_count", "must be at least min_cluster_count")
    else:
        low = high = 0
        v.check(MIN_CLUSTER_COUNT <= cluster_count <= MAX_CLUSTER_COUNT, "cluster_count",
                f"must be 0 (choose by silhouette) or between {MIN_CLUSTER_COUNT} and {MAX_CLUSTER_COUNT}")
        v.check(min_cluster_count == 0, "min_cluster_count", "must be 0 when cluster_count is given")
        v.check(max_cluster_count == 0, "max_cluster_count", "must be 0 when cluster_count is given")
    policy = missing_values or MissingValues.DROP
    v.enum(policy, "missing_values", set(MissingValues) - {MissingValues.UNSPECIFIED}, "ClusteringMissingValues")
    v.check(0 <= random_seed <= MAX_RANDOM_SEED, "random_seed", f"must be between 0 and {MAX_RANDOM_SEED}")
    v.raise_if_any()
    return ClusteringSpec(display_name=display_name, features=tuple(features), cluster_count=cluster_count,
                          min_cluster_count=low, max_cluster_count=high, missing_values=MissingValues(policy),
                          random_seed=random_seed, population_segment_id=population_segment_id)


def request_of(spec: ClusteringSpec, customer_ids: tuple[str, ...],
               values: tuple[tuple[float | None, ...], ...]) -> ClusteringRequest:
    """The pure clustering request for a stored run's spec and the customers' values."""
    return ClusteringRequest(customer_ids=customer_ids, features=spec.features, values=values,
                             cluster_count=spec.cluster_count,
                             min_cluster_count=spec.min_cluster_count or DEFAULT_MIN_CLUSTER_COUNT,
                             max_cluster_count=spec.max_cluster_count or DEFAULT_MAX_CLUSTER_COUNT,
                             missing_values=spec.missing_values, random_state=spec.random_seed)


def feature_profiles(features: Sequence[str], centroid: Sequence[float], means: Sequence[float],
                     standard_deviations: Sequence[float]) -> tuple[FeatureProfile, ...]:
    """Every feature of a cluster against the population, largest absolute difference first
    (in standard deviations; a constant feature, scale 1, differs by its raw difference: 0)."""
    profiles = [FeatureProfile(feature=f, mean=c, population_mean=m, population_standard_deviation=s,
                               standardised_difference=(c - m) / s if s else 0.0)
                for f, c, m, s in zip(features, centroid, means, standard_deviations, strict=True)]
    return tuple(sorted(profiles, key=lambda p: -abs(p.standardised_difference)))


def label(profiles: Sequence[FeatureProfile], distinguishing: Sequence[str]) -> str:
    """`high aum, low login_count_30d`: the distinguishing features with their direction."""
    by_feature = {p.feature: p for p in profiles}
    words = [f"{'high' if by_feature[f].standardised_difference > 0 else 'low'} {f}"
             for f in distinguishing if f in by_feature]
    return ", ".join(words) or "typical"


def stored_clusters(result: ClusteringResult) -> tuple[Cluster, ...]:
    """The result's clusters as stored and served: numbered from 1."""
    clusters = []
    for profile in result.profiles:
        profiles = feature_profiles(result.features, profile.centroid, result.feature_means,
                                    result.feature_standard_deviations)
        distinguishing = tuple(d.feature for d in profile.distinguishing_features)
        clusters.append(Cluster(cluster_id=profile.cluster_id + 1, size=profile.size, share=profile.share,
                                label=label(profiles, distinguishing), feature_profiles=profiles,
                                distinguishing_features=distinguishing))
    return tuple(clusters)
