"""Checks of a training request that need no data (the rest fail the operation in the worker),
and the defaults filled in before the spec is stored."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from pathlib import Path

from crm_risk.churn.model import FeatureKind, FeatureSpec
from crm_risk.registry.model import Algorithm, DataMode, TrainingRequest
from crmkit.errors import FailedPrecondition
from crmkit.validation import Violations

# A plain file name: no directory part, so a spec can never reach outside the training directory.
SNAPSHOT_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,250}\.csv$")
MAX_FEATURES = 200
MAX_HYPERPARAMETERS = 20
MAX_TEXT = 1000
DEFAULT_VALIDATION_FRACTION = 0.2
# The id column of a snapshot read from the customer read model.
READ_MODEL_ID = "customer_id"


def check(request: TrainingRequest) -> TrainingRequest:
    """The request with defaults filled in; INVALID_ARGUMENT naming every bad field."""
    v = Violations()
    if request.algorithm != Algorithm.GRADIENT_BOOSTING:
        v.add("spec.algorithm", "must be MODEL_ALGORITHM_GRADIENT_BOOSTING (the only algorithm trained yet)")
    if request.data_mode == DataMode.HISTORY:
        v.add("spec.data_mode", "history mode is not served yet: use TRAINING_DATA_MODE_SNAPSHOT")
    elif request.data_mode not in (0, DataMode.SNAPSHOT):
        v.add("spec.data_mode", "is not a known mode")
    v.check(bool(request.label_attribute), "spec.label_attribute",
            "is required in snapshot mode: name the column holding the churn label")
    if request.read_model:
        v.check(not request.file, "spec.snapshot.file", "must be empty when spec.snapshot.read_model is set")
        v.check(request.id_attribute in ("", READ_MODEL_ID), "spec.snapshot.id_attribute",
                f"must be empty or {READ_MODEL_ID} when spec.snapshot.read_model is set")
    elif v.check(bool(request.file), "spec.snapshot.file", "is required in snapshot mode"):
        v.check(bool(SNAPSHOT_FILE.match(request.file)), "spec.snapshot.file",
                "must be a file name in the training directory: letters, digits, '.', '_' and '-', ending in .csv")
    if not request.read_model:
        v.check(bool(request.id_attribute), "spec.snapshot.id_attribute", "is required: name the customer id column")
    if v.check(bool(request.features), "spec.features", "is required in snapshot mode: name the columns to use"):
        v.check(len(request.features) <= MAX_FEATURES, "spec.features", f"must hold at most {MAX_FEATURES} names")
        v.check(len(set(request.features)) == len(request.features), "spec.features", "must not repeat a name")
    stray = [name for name in request.categorical_features if name not in request.features]
    v.check(not stray, "spec.snapshot.categorical_features", f"must each be in spec.features (not: {', '.join(stray)})")
    v.check(len(request.hyperparameters) <= MAX_HYPERPARAMETERS, "spec.hyperparameters",
            f"must hold at most {MAX_HYPERPARAMETERS} entries")
    v.check(request.validation_fraction == 0 or 0.05 <= request.validation_fraction <= 0.5,
            "spec.validation_fraction", "must be between 0.05 and 0.5 (0 means 0.2)")
    v.check(request.random_seed >= 0, "spec.random_seed", "must not be negative")
    v.check(len(request.description) <= MAX_TEXT, "spec.description", f"must be at most {MAX_TEXT} characters")
    v.raise_if_any()
    return replace(request, data_mode=DataMode.SNAPSHOT,
                   id_attribute=READ_MODEL_ID if request.read_model else request.id_attribute,
                   validation_fraction=request.validation_fraction or DEFAULT_VALIDATION_FRACTION,
                   random_seed=request.random_seed or secrets.randbelow(2**31 - 1) + 1)


def feature_specs(request: TrainingRequest) -> tuple[FeatureSpec, ...]:
    categorical = set(request.categorical_features)
    return tuple(FeatureSpec(name, FeatureKind.CATEGORICAL if name in categorical else FeatureKind.NUMERIC)
                 for name in request.features)


def snapshot_path(training_dir: str, file: str) -> Path:
    """The file's path; FAILED_PRECONDITION when the service has no training directory."""
    if not training_dir:
        raise FailedPrecondition("snapshot training needs the service's training directory (CRM_RISK_TRAINING_DIR)",
                                 reason="NO_TRAINING_DIRECTORY")
    return Path(training_dir) / file


def check_reason(v: Violations, reason: str) -> None:
    if v.check(bool(reason.strip()), "reason", "is required: say why"):
        v.check(len(reason) <= MAX_TEXT, "reason", f"must be at most {MAX_TEXT} characters")
