"""Training in a worker process (crmkit.operations, `spawn`): fit, calibrate, measure on held-out rows.

Gradient boosting over the contact fields and context (categories natively), calibrated with
Platt scaling over 3 folds of the training rows; the held-out rows (stratified by outcome)
measure ranking (ROC AUC, average precision) and calibration (Brier score, ECE). The artifact is
the calibrated estimator with its encoding, pickled for this service's own scoring.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crm_campaign.propensity import rules
from crm_campaign.propensity.model import TrainedModel, TrainingParams, TrainingRow

ALGORITHM = "hist-gradient-boosting+sigmoid-calibration"


@dataclass(frozen=True)
class TrainingJob:
    params: TrainingParams
    rows: Sequence[TrainingRow]


def train(job: TrainingJob) -> TrainedModel:
    """The worker function: rows in, a calibrated model and its held-out measures out."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    rows = list(job.rows)
    rules.check_rows(rows)
    labels = np.array([int(r.accepted) for r in rows])
    train_index, held_index = train_test_split(np.arange(len(rows)), test_size=job.params.held_out_fraction,
                                               stratify=labels, random_state=job.params.seed)
    training = [rows[i] for i in train_index]
    encoding = rules.fit_encoding(training)
    x_train, x_held = encoding.matrix(training), encoding.matrix([rows[i] for i in held_index])
    booster = HistGradientBoostingClassifier(
        categorical_features=np.array(encoding.categorical), learning_rate=0.05, max_iter=300, max_leaf_nodes=15,
        min_samples_leaf=50, l2_regularization=1.0, random_state=job.params.seed)
    # ensemble=False: one booster fitted on all training rows, its sigmoid fitted on 3-fold
    # out-of-fold scores (a monotone map: calibration does not change the ranking).
    model = CalibratedClassifierCV(booster, method="sigmoid", cv=3, ensemble=False)
    with threadpool_limits(limits=1):  # the machine's cores belong to the services; one for training
        model.fit(x_train, labels[train_index])
        scores = model.predict_proba(x_held)[:, 1]
    measured = rules.metrics(labels[held_index], scores, training_rows=len(train_index),
                             positive_rate=float(labels.mean()))
    return TrainedModel(algorithm=ALGORITHM, features=encoding.features, metrics=measured,
                        data_fingerprint=rules.fingerprint(rows),
                        artifact=pickle.dumps({"encoding": encoding, "model": model}))
