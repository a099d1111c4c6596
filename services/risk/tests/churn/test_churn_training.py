"""Churn model training on the real churn file (trained once per module) and on small synthetic
data: held-out quality, calibration, fairness, fingerprint, drivers and bad input."""

from __future__ import annotations

import csv
import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from crm_risk.churn import features, rules, training
from crm_risk.churn.model import (
    ArtifactMismatch,
    FeatureKind,
    FeatureSpec,
    GroupAttributes,
    SnapshotTable,
    TooFewLabels,
    TrainingData,
    TrainingParams,
    TrainingResult,
)
from crmkit.errors import InvalidArgument
from crmkit.testing import shared_data_dir

CHURN_FILE = "Churn_Modelling.csv"
CHURN_FEATURES = (
    FeatureSpec("CreditScore"), FeatureSpec("Geography", FeatureKind.CATEGORICAL),
    FeatureSpec("Gender", FeatureKind.CATEGORICAL), FeatureSpec("Age"), FeatureSpec("Tenure"),
    FeatureSpec("Balance"), FeatureSpec("NumOfProducts"), FeatureSpec("HasCrCard"),
    FeatureSpec("IsActiveMember"), FeatureSpec("EstimatedSalary"),
)
GROUPS = GroupAttributes(age="Age", gender="Gender", region="Geography")
# Held-out evaluation without cross-validation keeps the module fixture to a few seconds.
FAST = TrainingParams(cv_folds=0, importance_repeats=3)
SMALL = TrainingParams(cv_folds=0, importance_repeats=0, hyperparameters=(("max_iter", "40"),))


def churn_table() -> SnapshotTable:
    with (shared_data_dir(CHURN_FILE) / CHURN_FILE).open(newline="") as file:
        reader = csv.reader(file)
        columns = tuple(next(reader))
        return SnapshotTable(columns=columns, rows=tuple(tuple(row) for row in reader))


def churn_data(table: SnapshotTable) -> TrainingData:
    return features.snapshot_training_data(table, features=CHURN_FEATURES, label_attribute="Exited",
                                           id_attribute="CustomerId", groups=GROUPS)


@pytest.fixture(scope="module")
def table() -> SnapshotTable:
    return churn_table()


@pytest.fixture(scope="module")
def data(table: SnapshotTable) -> TrainingData:
    return churn_data(table)


@pytest.fixture(scope="module")
def trained(data: TrainingData) -> TrainingResult:
    return training.train(data, FAST)


def synthetic(rows: int = 600, seed: int = 3, positive_share: float = 0.3) -> TrainingData:
    """Two numeric features; churn is likelier with a high first one."""
    rng = random.Random(seed)
    values, labels = [], []
    for _ in range(rows):
        x = (rng.gauss(0, 1), rng.gauss(0, 1))
        values.append(x)
        labels.append(int(rng.random() < positive_share * (1.5 if x[0] > 0 else 0.5)))
    table = SnapshotTable(columns=("id", "x", "y", "label"),
                          rows=tuple((f"s{i}", *map(str, v), str(y)) for i, (v, y) in
                                     enumerate(zip(values, labels, strict=True))))
    return features.snapshot_training_data(table, features=(FeatureSpec("x"), FeatureSpec("y")),
                                           label_attribute="label", id_attribute="id")


def test_held_out_quality_on_the_churn_file(trained: TrainingResult) -> None:
    metrics = trained.model_version.metrics

    assert metrics.roc_auc >= 0.84
    assert metrics.positive_rate == pytest.approx(0.2037, abs=0.005)
    # Average precision well above its chance level, the churn rate.
    assert metrics.pr_auc >= 0.6
    assert metrics.top_decile_lift >= 3.5
    assert metrics.brier_score <= 0.11
    assert (metrics.training_rows, metrics.validation_rows) == (8_000, 2_000)


def test_probabilities_are_calibrated(trained: TrainingResult) -> None:
    metrics = trained.model_version.metrics
    curve = metrics.calibration_curve

    assert sum(b.count for b in curve) == metrics.validation_rows
    assert metrics.expected_calibration_error <= 0.03
    # Each bin with enough customers to measure a rate agrees with it within 10 points.
    assert all(abs(b.observed_rate - b.mean_score) <= 0.1 for b in curve if b.count >= 100)
    assert all(b.low <= b.mean_score < b.high for b in curve)


def test_fairness_report_covers_every_group_and_flags_by_the_four_fifths_rule(trained: TrainingResult) -> None:
    report = trained.model_version.fairness
    groups = {(g.dimension, g.group): g for g in report.groups}

    assert {g for d, g in groups if d == "gender"} == {"Female", "Male"}
    assert {g for d, g in groups if d == "region"} == {"France", "Germany", "Spain"}
    assert {g for d, g in groups if d == "age_band"} == {"<30", "30-39", "40-49", "50-59", "60+"}
    assert sum(g.count for g in report.groups if g.dimension == "gender") == 2_000
    assert report.threshold == trained.model_version.band_thresholds.high_min_probability
    for dimension in ("age_band", "gender", "region"):
        members = [g for g in report.groups if g.dimension == dimension]
        assert max(g.selection_rate_ratio for g in members) == 1.0
    for group in report.groups:
        assert group.flagged == (not group.small_sample and group.selection_rate_ratio < 0.8)
    # The file's German customers churn most, and the model selects them most.
    assert groups[("region", "Germany")].selection_rate_ratio == 1.0
    assert groups[("region", "France")].flagged


def test_importance_ranks_the_known_strong_features_first(trained: TrainingResult) -> None:
    top = [i.name for i in trained.model_version.importances[:3]]

    assert {"Age", "NumOfProducts"} <= set(top)


def test_fingerprint_is_stable_across_runs_and_row_order(data: TrainingData, table: SnapshotTable,
                                                         trained: TrainingResult) -> None:
    again = churn_data(churn_table())
    reordered = churn_data(replace(table, rows=table.rows[::-1]))
    changed_rows = ((*table.rows[0][:4], "Spain", *table.rows[0][5:]), *table.rows[1:])
    changed = churn_data(replace(table, rows=changed_rows))

    def print_of(d: TrainingData) -> str:
        return rules.fingerprint(d.encoding.columns, d.customer_ids, np.asarray(d.values), d.labels)

    recorded = trained.model_version.data_fingerprint
    assert print_of(again) == print_of(reordered) == recorded
    assert print_of(changed) != recorded
    assert len(recorded) == 64


def test_model_version_record_is_ready_for_a_registry(trained: TrainingResult) -> None:
    version = trained.model_version

    assert version.algorithm == "hist_gradient_boosting"
    assert version.framework_version.startswith("scikit-learn ")
    assert dict(version.effective_hyperparameters)["learning_rate"] == "0.02"
    assert version.encoding.columns[1:4] == ("Geography=France", "Geography=Germany", "Geography=Spain")
    assert len(version.artifact_sha256) == 64 and len(version.version) == 16
    bands = version.band_thresholds
    assert 0 < bands.medium_min_probability < bands.high_min_probability < 1


def test_drivers_name_what_raises_each_customers_score(trained: TrainingResult, table: SnapshotTable) -> None:
    sample = replace(table, rows=table.rows[:300])
    data = features.snapshot_scoring_data(sample, encoding=trained.model_version.encoding, id_attribute="CustomerId")

    scores = training.score(training.ScoringRequest(trained.artifact, trained.model_version.artifact_sha256, data))

    assert [s.customer_id for s in scores] == list(data.customer_ids)
    assert all(0 <= s.probability <= 1 for s in scores)
    for s in scores:
        contributions = [d.contribution for d in s.drivers]
        assert contributions == sorted(contributions, reverse=True) and all(c >= 0.01 for c in contributions)
        assert len(s.drivers) <= 3
    # Three or four products is the file's strongest single sign of leaving: always a reason given.
    column = table.columns.index("NumOfProducts")
    many = [s for s, row in zip(scores, sample.rows, strict=True) if int(row[column]) >= 3]
    assert many
    for s in many:
        products = next(d for d in s.drivers if d.feature == "NumOfProducts")
        assert products.value in ("3", "4") and products.reference == "1" and products.contribution >= 0.05


def test_a_tampered_artifact_is_refused(trained: TrainingResult, data: TrainingData) -> None:
    tampered = trained.artifact[:-1] + b"\x00"

    with pytest.raises(ArtifactMismatch):
        training.score(training.ScoringRequest(tampered, trained.model_version.artifact_sha256, data))


def test_training_is_deterministic_for_a_seed() -> None:
    data = synthetic()

    first, second = training.train(data, SMALL), training.train(data, SMALL)
    other_seed = training.train(data, replace(SMALL, random_seed=7))

    assert first.model_version == second.model_version
    assert first.model_version.version != other_seed.model_version.version
    assert first.model_version.data_fingerprint == other_seed.model_version.data_fingerprint


def test_one_class_or_too_few_labels_are_refused() -> None:
    data = synthetic()

    with pytest.raises(TooFewLabels, match="one class only"):
        training.train(replace(data, labels=(0,) * len(data.labels)), SMALL)
    few = tuple(1 if i < 10 else 0 for i in range(len(data.labels)))
    with pytest.raises(TooFewLabels, match="10 churned"):
        training.train(replace(data, labels=few), SMALL)


def test_bad_parameters_and_empty_data_are_named() -> None:
    params = replace(SMALL, hyperparameters=(("max_depth", "deep"), ("loss", "x"), ("learning_rate", "2")),
                     validation_fraction=0.9)

    with pytest.raises(InvalidArgument) as caught:
        training.train(synthetic(), params)
    assert {v.field for v in caught.value.violations} == {
        "hyperparameters.max_depth", "hyperparameters.loss", "hyperparameters.learning_rate", "validation_fraction"}

    empty = replace(synthetic(), customer_ids=(), values=(), labels=())
    with pytest.raises(InvalidArgument, match="data: must hold at least one customer"):
        training.train(empty, SMALL)


def test_training_runs_in_a_spawned_worker() -> None:
    data = synthetic()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(training.train, data, SMALL).result(timeout=120)
    local = training.train(data, SMALL)

    # The same model: every described part, and the same predictions. The pickled bytes (hence
    # artifact_sha256) may differ between processes whose state differs (this test process also
    # hosts the risk server, which unpickles and scores artifacts made in its workers); each
    # artifact is stored and checked with the hash of its own bytes, so that does not matter.
    assert replace(remote.model_version, artifact_sha256="") == replace(local.model_version, artifact_sha256="")
    rows = data.values[:50]
    remote_scores = [s.probability for s in training.score(training.ScoringRequest(
        artifact=remote.artifact, artifact_sha256=remote.model_version.artifact_sha256,
        data=replace(data, customer_ids=data.customer_ids[:50], values=rows, labels=()), top_drivers=0))]
    local_scores = [s.probability for s in training.score(training.ScoringRequest(
        artifact=local.artifact, artifact_sha256=local.model_version.artifact_sha256,
        data=replace(data, customer_ids=data.customer_ids[:50], values=rows, labels=()), top_drivers=0))]
    assert remote_scores == local_scores


@pytest.mark.slow
def test_cross_validation_agrees_with_the_held_out_split(data: TrainingData, trained: TrainingResult) -> None:
    result = training.train(data, replace(FAST, cv_folds=5, importance_repeats=0))
    cv = result.model_version.cross_validation

    assert cv is not None and len(cv.folds) == 5
    assert cv.mean_roc_auc >= 0.84
    assert cv.std_roc_auc <= 0.03
    assert all(f.top_decile_lift >= 3 for f in cv.folds)
    assert result.model_version.metrics == trained.model_version.metrics
