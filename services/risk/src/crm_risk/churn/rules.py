"""Pure decisions about churn models: the estimator's parameters, evaluation metrics, the
fairness report, risk-band thresholds and the data fingerprint. No I/O, no fitting.

Lift in the top decile: the churn rate among the 10 % highest scores over the overall rate.
Ties at the cut are broken by position (a stable sort), so the decile is exactly ceil(n / 10).

Calibration: validation scores in CALIBRATION_BINS equal-width bins of [0, 1]; the expected
calibration error is the count-weighted mean gap between a bin's mean score and its churn rate.

Fairness: per dimension (age band, gender, region) and group, the share of customers selected
(score >= threshold), the mean score, the observed churn rate, and TPR / FPR of the selection.
A group's selection-rate ratio is its rate over the highest rate of any group of the same
dimension; below `ratio` (0.8: the four-fifths rule) it is flagged, unless the group is smaller
than `min_group_size` (too few customers to tell a disparity from noise: reported, not flagged).
A flag says the model treats the group differently, not why: in the churn file older customers
and German ones do churn more, so their selection is higher on the evidence.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from crm_risk.churn.model import (
    BandThresholds,
    CalibrationBin,
    FairnessReport,
    GroupFairness,
    Metrics,
    TooFewLabels,
    TrainingParams,
)
from crmkit.validation import Violations

Vector = npt.NDArray[np.float64]

CALIBRATION_BINS = 10
TOP_SHARE = 0.1
# Risk bands from the validation scores: the top 10 % HIGH, the next 20 % MEDIUM.
HIGH_BAND_SHARE = 0.1
MEDIUM_BAND_SHARE = 0.2
# Each class needs this many rows (the contract's floor of 50 positives), so the held-out split,
# the calibration folds and cross-validation each see both classes.
MIN_CLASS_ROWS = 50
MAX_CV_FOLDS = 10
_FINGERPRINT_SCHEME = b"churn-data-v1"

# Estimator parameters a caller may set, each with its parser and rule; the rest are fixed.
# Smaller, slower trees: chosen by 5-fold cross-validation on the training share of the churn
# file (Churn_Modelling.csv, 8,000 customers of seed 7's split; its held-out rows chose nothing):
# 8 leaves, rate 0.02, 500 rounds, 20 per leaf beat 31 leaves, rate 0.05, 300 rounds, 50 per leaf
# on each of four fold shuffles (0.8681-0.8700 against 0.8662-0.8675; docs/risk-churn-read-model.md).
DEFAULT_HYPERPARAMETERS: dict[str, str] = {
    "learning_rate": "0.02", "max_iter": "500", "max_depth": "4", "min_samples_leaf": "20",
    "l2_regularization": "1.0", "max_leaf_nodes": "8", "max_bins": "255",
}


def _int_in(low: int, high: int) -> tuple[type, str, float, float]:
    return (int, f"must be a whole number between {low} and {high}", low, high)


_HYPERPARAMETER_RULES: dict[str, tuple[type, str, float, float]] = {
    "learning_rate": (float, "must be a number above 0 and at most 1", 1e-9, 1.0),
    "max_iter": _int_in(10, 2000),
    "max_depth": _int_in(1, 32),
    "min_samples_leaf": _int_in(1, 10_000),
    "l2_regularization": (float, "must be a number between 0 and 1000", 0.0, 1000.0),
    "max_leaf_nodes": _int_in(2, 256),
    "max_bins": _int_in(2, 255),
}


def validate_params(params: TrainingParams) -> dict[str, int | float]:
    """The estimator's parameters (defaults filled in); InvalidArgument naming every bad one."""
    v = Violations()
    given = dict(params.hyperparameters)
    v.check(len(given) == len(params.hyperparameters), "hyperparameters", "must not set a parameter twice")
    parsed: dict[str, int | float] = {}
    for name, text in {**DEFAULT_HYPERPARAMETERS, **given}.items():
        rule = _HYPERPARAMETER_RULES.get(name)
        if rule is None:
            known = ", ".join(sorted(_HYPERPARAMETER_RULES))
            v.add(f"hyperparameters.{name}", f"is not a known parameter: use {known}")
            continue
        kind, description, low, high = rule
        try:
            value = kind(text.strip())
        except ValueError:
            v.add(f"hyperparameters.{name}", description)
            continue
        if v.check(low <= value <= high, f"hyperparameters.{name}", description):
            parsed[name] = value
    v.check(0.05 <= params.validation_fraction <= 0.5, "validation_fraction", "must be between 0.05 and 0.5")
    v.check(params.cv_folds == 0 or 2 <= params.cv_folds <= MAX_CV_FOLDS, "cv_folds",
            f"must be 0 (no cross-validation) or between 2 and {MAX_CV_FOLDS}")
    v.check(0 <= params.random_seed < 2**32, "random_seed", "must be between 0 and 2^32 - 1")
    v.check(0 < params.fairness_ratio <= 1, "fairness_ratio", "must be above 0 and at most 1")
    v.check(params.min_group_size >= 1, "min_group_size", "must be at least 1")
    v.check(0 <= params.importance_repeats <= 50, "importance_repeats", "must be between 0 and 50")
    v.raise_if_any()
    return parsed


def check_labels(labels: Sequence[int]) -> None:
    """TooFewLabels unless both classes have MIN_CLASS_ROWS rows."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        only = "churned" if negatives == 0 else "stayed"
        raise TooFewLabels(f"the label has one class only (every customer {only}): a model needs both")
    if min(positives, negatives) < MIN_CLASS_ROWS:
        raise TooFewLabels(f"too few labels to train and judge a model: {positives} churned and {negatives} "
                           f"stayed, need at least {MIN_CLASS_ROWS} of each")


def top_decile_lift(labels: Vector, scores: Vector) -> float:
    order = np.argsort(-scores, kind="stable")
    top = order[: max(1, math.ceil(len(scores) * TOP_SHARE))]
    base = float(labels.mean())
    return float(labels[top].mean()) / base if base else 0.0


def calibration_curve(labels: Vector, scores: Vector, bins: int = CALIBRATION_BINS) -> tuple[CalibrationBin, ...]:
    """Non-empty equal-width bins; a score of exactly 1.0 falls in the last bin."""
    index = np.minimum((scores * bins).astype(np.int64), bins - 1)
    result = []
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        if count:
            result.append(CalibrationBin(low=b / bins, high=(b + 1) / bins, count=count,
                                         mean_score=float(scores[members].mean()),
                                         observed_rate=float(labels[members].mean())))
    return tuple(result)


def expected_calibration_error(curve: Sequence[CalibrationBin]) -> float:
    total = sum(b.count for b in curve)
    return sum(b.count * abs(b.observed_rate - b.mean_score) for b in curve) / total if total else 0.0


def metrics(labels: Vector, scores: Vector, *, training_rows: int) -> Metrics:
    curve = calibration_curve(labels, scores)
    return Metrics(
        roc_auc=float(roc_auc_score(labels, scores)),
        pr_auc=float(average_precision_score(labels, scores)),
        brier_score=float(brier_score_loss(labels, scores)),
        log_loss=float(log_loss(labels, scores, labels=[0, 1])),
        positive_rate=float(labels.mean()),
        top_decile_lift=top_decile_lift(labels, scores),
        expected_calibration_error=expected_calibration_error(curve),
        training_rows=training_rows,
        validation_rows=len(labels),
        calibration_curve=curve,
    )


def band_thresholds(scores: Vector) -> BandThresholds:
    high = float(np.quantile(scores, 1 - HIGH_BAND_SHARE))
    medium = float(np.quantile(scores, 1 - HIGH_BAND_SHARE - MEDIUM_BAND_SHARE))
    return BandThresholds(medium_min_probability=min(medium, high), high_min_probability=high)


def fairness_report(labels: Vector, scores: Vector, groups: Sequence[tuple[str, Sequence[str]]], *,
                    threshold: float, ratio: float, min_group_size: int) -> FairnessReport:
    """Every group of every dimension, in dimension order then group name."""
    selected = scores >= threshold
    result: list[GroupFairness] = []
    for dimension, membership in groups:
        members = np.asarray(membership)
        names = sorted(set(membership))
        rows = []
        for name in names:
            mask = members == name
            positives = mask & (labels == 1)
            negatives = mask & (labels == 0)
            rows.append((name, int(mask.sum()), float(labels[mask].mean()), float(scores[mask].mean()),
                         float(selected[mask].mean()),
                         float(selected[positives].mean()) if positives.any() else None,
                         float(selected[negatives].mean()) if negatives.any() else None))
        judged = [r for r in rows if r[1] >= min_group_size] or rows
        best_selection = max(r[4] for r in judged)
        tprs = [r[5] for r in judged if r[5] is not None]
        best_tpr = max(tprs) if tprs else None
        for name, count, outcome, mean_score, selection, tpr, fpr in rows:
            selection_ratio = selection / best_selection if best_selection else 1.0
            small = count < min_group_size
            result.append(GroupFairness(
                dimension=dimension, group=name, count=count, outcome_rate=outcome, mean_score=mean_score,
                selection_rate=selection, true_positive_rate=tpr, false_positive_rate=fpr,
                selection_rate_ratio=selection_ratio,
                true_positive_rate_ratio=(tpr / best_tpr if best_tpr else 1.0) if tpr is not None else None,
                flagged=not small and selection_ratio < ratio, small_sample=small))
    return FairnessReport(threshold=threshold, ratio=ratio, groups=tuple(result))


def fingerprint(columns: Sequence[str], customer_ids: Sequence[str], values: npt.NDArray[np.float64],
                labels: Sequence[int]) -> str:
    """SHA-256 of the column names and the (customer, row, label) triples sorted by customer: the
    same data in any row order gives the same fingerprint, any changed cell a different one."""
    order = sorted(range(len(customer_ids)), key=customer_ids.__getitem__)
    digest = hashlib.sha256(_FINGERPRINT_SCHEME)
    digest.update(b"\x1e" + "\x1f".join(columns).encode())
    digest.update(b"\x1e" + "\x1f".join(customer_ids[i] for i in order).encode())
    digest.update(b"\x1e" + np.ascontiguousarray(values[order], dtype="<f8").tobytes())
    digest.update(b"\x1e" + np.asarray([labels[i] for i in order], dtype="<i1").tobytes())
    return digest.hexdigest()


def model_version(*parts: str) -> str:
    """A short hash of everything that decides the model: equal versions, equal models."""
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:16]
