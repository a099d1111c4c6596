"""Training and scoring, as plain top-level functions of picklable values: the service runs them
in a spawned worker (`crmkit.operations`), never on the event loop.

The model: HistGradientBoostingClassifier inside CalibratedClassifierCV (5 folds, ensemble of
the fold models). Calibration is **sigmoid** (Platt), not isotonic, because:
- it is strictly monotone, so it keeps the booster's ranking (AUC, lift and the top-decile band
  cut are the booster's own); isotonic is a step function that ties hundreds of customers at one
  score (1,015 distinct scores among 2,000 held-out churn customers against 2,000 for sigmoid);
- each calibration fold holds ~1,600 customers and ~330 churners: two parameters fit stably
  there, while isotonic (as scikit-learn warns) overfits below about a thousand per fold;
- log-loss boosting is nearly calibrated already; what is left is a mild, sigmoid-shaped
  distortion. On the churn file both give the same Brier score (0.0998 vs 0.0999).
`TrainingParams.calibration` can still ask for isotonic when a bank has far more data.

The registered model is the one fitted on the training split, so the held-out metrics describe
exactly the artifact that scores; cross-validation (refitting the whole recipe k times) tells
how much those metrics move with the split. Seeds: the split, the folds, the booster and the
permutations all derive from `random_seed`, so the same data and params give the same model.

Threads: one (threadpoolctl). The worker pool is the unit of parallelism, and on a shared host
OpenMP threads spin waiting for each other (see crm_segment.clusters.rules).
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import ThreadpoolController, threadpool_limits

from crm_risk.churn import drivers, rules
from crm_risk.churn.model import (
    ArtifactMismatch,
    CalibrationMethod,
    CrossValidation,
    CustomerScore,
    Encoding,
    FeatureImportance,
    FoldMetrics,
    ModelVersion,
    TrainingData,
    TrainingParams,
    TrainingResult,
)
from crmkit.validation import Violations

Matrix = npt.NDArray[np.float64]
ALGORITHM = "hist_gradient_boosting"
CALIBRATION_FOLDS = 5
MAX_TOP_DRIVERS = 10
# The thread pools (OpenMP, BLAS) of the libraries loaded by the imports above, found once:
# `threadpool_limits()` looks for them on every call, 3 ms, a sixth of one customer's score.
_THREADPOOLS = ThreadpoolController()


@dataclass(frozen=True)
class _Artifact:
    """What is pickled: the fitted model and what scoring needs to encode and explain."""

    model: CalibratedClassifierCV
    encoding: Encoding
    reference: drivers.Reference


# What `load` gives: opaque to callers, who keep it and pass it to `score_loaded`.
LoadedModel = _Artifact


@dataclass(frozen=True)
class ScoringRequest:
    artifact: bytes
    artifact_sha256: str
    # Encoded with the model's encoding (`features.snapshot_scoring_data(encoding=...)`).
    data: TrainingData
    top_drivers: int = 3


def train(data: TrainingData, params: TrainingParams) -> TrainingResult:
    """Fit, evaluate and describe a churn model. InvalidArgument for bad data or params,
    TooFewLabels when the labels cannot train or judge a model."""
    hyperparameters = rules.validate_params(params)
    _validate_data(data)
    rules.check_labels(data.labels)
    with threadpool_limits(limits=1):
        return _train(data, params, hyperparameters)


def score(request: ScoringRequest) -> tuple[CustomerScore, ...]:
    """Probabilities and top drivers, in the request's customer order. ArtifactMismatch when the
    artifact is not the registered one (it is checked before it is unpickled)."""
    return score_loaded(load(request.artifact, request.artifact_sha256), request.data,
                        top_drivers=request.top_drivers)


def load(artifact: bytes, artifact_sha256: str) -> LoadedModel:
    """The fitted model of an artifact, for `score_loaded`. ArtifactMismatch when the artifact
    is not the registered one (it is checked before it is unpickled)."""
    if hashlib.sha256(artifact).hexdigest() != artifact_sha256:
        raise ArtifactMismatch("the model artifact does not match its registered SHA-256: refusing to load it")
    loaded: _Artifact = pickle.loads(artifact)  # noqa: S301 - checked against the registry's hash above
    return loaded


def score_loaded(artifact: LoadedModel, data: TrainingData, *, top_drivers: int) -> tuple[CustomerScore, ...]:
    """`score` with a model already loaded (a scorer keeps it: loading a model of thousands of
    trees costs far more than scoring one customer)."""
    v = Violations()
    v.check(0 <= top_drivers <= MAX_TOP_DRIVERS, "top_drivers", f"must be between 0 and {MAX_TOP_DRIVERS}")
    v.check(bool(data.customer_ids), "data", "must hold at least one customer")
    v.check(not data.customer_ids or data.encoding.columns == artifact.encoding.columns, "data",
            "must be encoded with the model's encoding (its columns differ)")
    v.raise_if_any()
    values = _matrix(data)
    with _THREADPOOLS.limit(limits=1):
        probabilities, contribution = drivers.contributions(_predictor(artifact.model), values, artifact.reference)
    return tuple(
        CustomerScore(customer_id=customer, probability=float(probabilities[i]),
                      drivers=drivers.top_drivers(artifact.encoding, artifact.reference, contribution[i],
                                                  data.display_values[i] if data.display_values else (),
                                                  top_drivers))
        for i, customer in enumerate(data.customer_ids))


def _validate_data(data: TrainingData) -> None:
    v = Violations()
    rows = len(data.customer_ids)
    v.check(rows > 0, "data", "must hold at least one customer")
    v.check(len(data.values) == rows and len(data.labels) == rows, "data",
            "must hold one row of values and one label per customer")
    width = len(data.encoding.columns)
    v.check(width > 0, "data.encoding", "must have at least one column")
    v.check(all(len(row) == width for row in data.values), "data.values", "every row must hold one value per column")
    v.check(all(label in (0, 1) for label in data.labels), "data.labels", "every label must be 0 or 1")
    v.check(all(len(g) == rows for _, g in data.groups), "data.groups", "must name one group per customer")
    v.raise_if_any()


def _matrix(data: TrainingData) -> Matrix:
    return np.asarray(data.values, dtype=np.float64).reshape(len(data.values), len(data.encoding.columns))


def _estimator(hyperparameters: dict[str, int | float], params: TrainingParams, seed: int) -> CalibratedClassifierCV:
    booster = HistGradientBoostingClassifier(random_state=seed, early_stopping=False, **hyperparameters)
    method = "isotonic" if params.calibration == CalibrationMethod.ISOTONIC else "sigmoid"
    folds = StratifiedKFold(n_splits=CALIBRATION_FOLDS, shuffle=True, random_state=seed)
    return CalibratedClassifierCV(booster, method=method, cv=folds, ensemble=True)


def _predictor(model: CalibratedClassifierCV):  # type: ignore[no-untyped-def]
    return lambda x: model.predict_proba(x)[:, 1]


def _train(data: TrainingData, params: TrainingParams, hyperparameters: dict[str, int | float]) -> TrainingResult:
    x = _matrix(data)
    y = np.asarray(data.labels, dtype=np.int64)
    seed = params.random_seed
    indices = np.arange(len(y))
    train_rows, validation_rows = train_test_split(indices, test_size=params.validation_fraction, stratify=y,
                                                   random_state=seed)
    model = _estimator(hyperparameters, params, seed).fit(x[train_rows], y[train_rows])
    predict = _predictor(model)
    validation_scores = predict(x[validation_rows])
    y_validation = y[validation_rows].astype(np.float64)
    metrics = rules.metrics(y_validation, validation_scores, training_rows=len(train_rows))
    bands = rules.band_thresholds(validation_scores)
    fairness = rules.fairness_report(
        y_validation, validation_scores,
        [(dimension, [membership[i] for i in validation_rows]) for dimension, membership in data.groups],
        threshold=bands.high_min_probability, ratio=params.fairness_ratio, min_group_size=params.min_group_size)
    importances = _importances(model, x[validation_rows], y[validation_rows], data.encoding, params)
    cross_validation = _cross_validate(x, y, hyperparameters, params) if params.cv_folds else None

    artifact = pickle.dumps(_Artifact(model=model, encoding=data.encoding,
                                      reference=drivers.reference(data.encoding, x[train_rows])),
                            protocol=pickle.HIGHEST_PROTOCOL)
    data_fingerprint = rules.fingerprint(data.encoding.columns, data.customer_ids, x, data.labels)
    effective = tuple(sorted((k, str(v)) for k, v in hyperparameters.items()))
    framework = f"scikit-learn {sklearn.__version__}"
    version = rules.model_version(ALGORITHM, framework, data_fingerprint, repr(effective),
                                  params.calibration.name, str(seed), str(params.validation_fraction))
    return TrainingResult(
        model_version=ModelVersion(
            version=version, algorithm=ALGORITHM, framework_version=framework, encoding=data.encoding,
            importances=importances, params=params, effective_hyperparameters=effective, metrics=metrics,
            cross_validation=cross_validation, band_thresholds=bands, fairness=fairness,
            data_fingerprint=data_fingerprint, artifact_sha256=hashlib.sha256(artifact).hexdigest(),
            creator=params.creator),
        artifact=artifact)


def _importances(model: CalibratedClassifierCV, x: Matrix, y: npt.NDArray[np.int64], encoding: Encoding,
                 params: TrainingParams) -> tuple[FeatureImportance, ...]:
    """Permutation importance on the held-out rows: the drop in ROC AUC per shuffled column."""
    if not params.importance_repeats:
        return ()
    result = permutation_importance(model, x, y, scoring="roc_auc", n_repeats=params.importance_repeats,
                                    random_state=params.random_seed)
    ranked = sorted(zip(encoding.columns, result.importances_mean, strict=True), key=lambda p: -p[1])
    return tuple(FeatureImportance(name=name, importance=float(value)) for name, value in ranked)


def _cross_validate(x: Matrix, y: npt.NDArray[np.int64], hyperparameters: dict[str, int | float],
                    params: TrainingParams) -> CrossValidation:
    folds = StratifiedKFold(n_splits=params.cv_folds, shuffle=True, random_state=params.random_seed)
    results = []
    for fold, (fit_rows, test_rows) in enumerate(folds.split(x, y)):
        model = _estimator(hyperparameters, params, params.random_seed).fit(x[fit_rows], y[fit_rows])
        m = rules.metrics(y[test_rows].astype(np.float64), _predictor(model)(x[test_rows]),
                          training_rows=len(fit_rows))
        results.append(FoldMetrics(fold=fold, roc_auc=m.roc_auc, pr_auc=m.pr_auc, brier_score=m.brier_score,
                                   top_decile_lift=m.top_decile_lift))
    aucs = np.asarray([r.roc_auc for r in results])
    return CrossValidation(folds=tuple(results), mean_roc_auc=float(aucs.mean()), std_roc_auc=float(aucs.std()),
                           mean_pr_auc=float(np.mean([r.pr_auc for r in results])),
                           mean_brier_score=float(np.mean([r.brier_score for r in results])))
