"""Churn training and scoring as the service's code sees them: plain, picklable values (they
cross into and out of a spawned worker process), no protos and no numpy in the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from crmkit.errors import FailedPrecondition


class FeatureKind(IntEnum):
    NUMERIC = 1
    # One-hot encoded: one model column per category seen in training, named `feature=category`.
    CATEGORICAL = 2


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: FeatureKind = FeatureKind.NUMERIC


@dataclass(frozen=True)
class SnapshotTable:
    """A bank's own file: one row per customer, cells as read (text or numbers; "" or None is
    missing). The label is one of its columns (`label_attribute`)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str | float | None, ...], ...]


@dataclass(frozen=True)
class GroupAttributes:
    """Columns the fairness report groups by, where the file has them ("" when it does not).
    Age is cut into AGE_BANDS; gender and region are taken as written."""

    age: str = ""
    gender: str = ""
    region: str = ""


@dataclass(frozen=True)
class Encoding:
    """How source features become model columns, fixed at training so scoring encodes alike."""

    features: tuple[FeatureSpec, ...]
    # Per categorical feature (in `features` order) its categories seen in training, sorted.
    categories: tuple[tuple[str, ...], ...]
    # The model's columns: numeric features by name, categorical ones as `feature=category`.
    columns: tuple[str, ...]


@dataclass(frozen=True)
class TrainingData:
    """Rows are customers, columns `encoding.columns`; NaN is missing (the model handles it).

    `groups` maps a fairness dimension (`age_band`, `gender`, `region`) to each row's group."""

    customer_ids: tuple[str, ...]
    encoding: Encoding
    values: tuple[tuple[float, ...], ...]
    labels: tuple[int, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Each row's source values as text, for drivers a person reads ("Germany", "52").
    display_values: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Event:
    """One entry of a customer's history. `amount` is signed: money in positive, out negative;
    the running sum is the balance. Kind `closed_all` means the customer closed every account."""

    customer_id: str
    time: datetime
    kind: str
    amount: float = 0.0


class HistoryLabel(IntEnum):
    """What makes a history-based label positive, judged only inside the prediction window."""

    # A `closed_all` event.
    FULL_ATTRITION = 1
    # The balance at the window's end is below `balance_share` of its peak in the observation window.
    BALANCE_ATTRITION = 2
    # No event at all.
    DORMANCY = 3


@dataclass(frozen=True)
class Window:
    """Features from [observation_start, cutoff), labels from [cutoff, prediction_end).
    Nothing at or after `cutoff` reaches a feature."""

    observation_start: datetime
    cutoff: datetime
    prediction_end: datetime


@dataclass(frozen=True)
class ExternalFeature:
    """A precomputed feature value (e.g. from the read model) and when it was known. A value
    known at or after the cutoff is future data: the windowed builder rejects it."""

    customer_id: str
    name: str
    value: float
    observed_at: datetime


class CalibrationMethod(IntEnum):
    SIGMOID = 1
    ISOTONIC = 2


@dataclass(frozen=True)
class TrainingParams:
    # Estimator parameters by scikit-learn name, values as text (the contract's map<string, string>).
    hyperparameters: tuple[tuple[str, str], ...] = ()
    random_seed: int = 42
    validation_fraction: float = 0.2
    cv_folds: int = 5
    calibration: CalibrationMethod = CalibrationMethod.SIGMOID
    # Fairness: "selected" means scored at or above the HIGH band threshold; a group whose ratio
    # to the best group is below `fairness_ratio` is flagged (four-fifths rule by default).
    fairness_ratio: float = 0.8
    min_group_size: int = 30
    # Permutation importance repeats; 0 skips global importance (drivers still work).
    importance_repeats: int = 5
    creator: str = ""


@dataclass(frozen=True)
class CalibrationBin:
    """Validation customers whose score fell in [low, high): mean score vs observed churn rate."""

    low: float
    high: float
    count: int
    mean_score: float
    observed_rate: float


@dataclass(frozen=True)
class Metrics:
    roc_auc: float
    pr_auc: float
    brier_score: float
    log_loss: float
    positive_rate: float
    top_decile_lift: float
    # Count-weighted mean |observed rate - mean score| over the calibration bins.
    expected_calibration_error: float
    training_rows: int
    validation_rows: int
    calibration_curve: tuple[CalibrationBin, ...] = ()


@dataclass(frozen=True)
class FoldMetrics:
    fold: int
    roc_auc: float
    pr_auc: float
    brier_score: float
    top_decile_lift: float


@dataclass(frozen=True)
class CrossValidation:
    folds: tuple[FoldMetrics, ...]
    mean_roc_auc: float
    std_roc_auc: float
    mean_pr_auc: float
    mean_brier_score: float


@dataclass(frozen=True)
class GroupFairness:
    dimension: str
    group: str
    count: int
    outcome_rate: float
    mean_score: float
    selection_rate: float
    true_positive_rate: float | None  # None when the group has no positives
    false_positive_rate: float | None  # None when the group has no negatives
    # Ratios to the group of this dimension with the highest rate (1.0 for that group).
    selection_rate_ratio: float
    true_positive_rate_ratio: float | None
    # Below `fairness_ratio` on selection rate (four-fifths rule), in a group large enough to judge.
    flagged: bool
    small_sample: bool


@dataclass(frozen=True)
class FairnessReport:
    threshold: float
    ratio: float
    groups: tuple[GroupFairness, ...]

    @property
    def flagged(self) -> tuple[GroupFairness, ...]:
        return tuple(g for g in self.groups if g.flagged)


@dataclass(frozen=True)
class FeatureImportance:
    name: str
    # Drop in validation ROC AUC when the column is shuffled (mean over repeats).
    importance: float


@dataclass(frozen=True)
class BandThresholds:
    medium_min_probability: float
    high_min_probability: float


@dataclass(frozen=True)
class ModelVersion:
    """Everything a registry stores about one trained model, besides the artifact itself."""

    version: str
    algorithm: str
    framework_version: str
    encoding: Encoding
    importances: tuple[FeatureImportance, ...]
    params: TrainingParams
    # The estimator's parameters as used (defaults filled in), sorted by name.
    effective_hyperparameters: tuple[tuple[str, str], ...]
    metrics: Metrics
    cross_validation: CrossValidation | None
    band_thresholds: BandThresholds
    fairness: FairnessReport
    data_fingerprint: str
    artifact_sha256: str
    creator: str = ""


@dataclass(frozen=True)
class TrainingResult:
    model_version: ModelVersion
    # The pickled fitted model; load it only after checking `model_version.artifact_sha256`.
    artifact: bytes = field(repr=False)


@dataclass(frozen=True)
class Driver:
    """One reason for a customer's score: how many probability points the feature adds compared
    with the reference customer's value (positive raises the risk)."""

    feature: str
    value: str
    reference: str
    contribution: float


@dataclass(frozen=True)
class CustomerScore:
    customer_id: str
    probability: float
    drivers: tuple[Driver, ...]


class TooFewLabels(FailedPrecondition):
    """The labels cannot train or judge a model: one class only, or too few of one."""

    def __init__(self, message: str) -> None:
        super().__init__(message=message, reason="TOO_FEW_LABELS")


class ArtifactMismatch(FailedPrecondition):
    """The stored artifact is not the one registered (its SHA-256 differs)."""

    def __init__(self, message: str) -> None:
        super().__init__(message=message, reason="ARTIFACT_MISMATCH")
