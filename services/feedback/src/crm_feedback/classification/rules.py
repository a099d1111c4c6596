"""Checks of a training request that need no data (the rest fail the operation in the worker),
defaults, and the meaning of a classifier's labels."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from crm_feedback.classification.model import Target, TrainingRequest
from crmkit.errors import FailedPrecondition
from crmkit.validation import Violations

# A plain file name: no directory part, so a spec can never reach outside the training directory.
TRAINING_FILE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,250}\.csv$")
MAX_COLUMN = 200
MAX_MAPPING = 200
MAX_TEXT = 1000
DEFAULT_HOLDOUT_FRACTION = 0.2
DEFAULT_SEED = 42


def check(request: TrainingRequest) -> TrainingRequest:
    """The request with defaults filled in; INVALID_ARGUMENT naming every bad field."""
    v = Violations()
    v.check(request.target in (Target.CATEGORY, Target.SENTIMENT), "spec.target",
            "must be TEXT_CLASSIFIER_TARGET_CATEGORY or TEXT_CLASSIFIER_TARGET_SENTIMENT")
    if v.check(bool(request.file), "spec.file", "is required: name the CSV file in the training directory"):
        v.check(bool(TRAINING_FILE.match(request.file)), "spec.file",
                "must be a file name in the training directory: letters, digits, '.', '_' and '-', ending in .csv")
    for field, column in (("spec.text_column", request.text_column), ("spec.label_column", request.label_column)):
        if v.check(bool(column.strip()), field, "is required: name the CSV column"):
            v.check(len(column) <= MAX_COLUMN, field, f"must be at most {MAX_COLUMN} characters")
    v.check(not request.text_column or request.text_column != request.label_column, "spec.label_column",
            "must differ from spec.text_column")
    v.check(len(request.label_mapping) <= MAX_MAPPING, "spec.label_mapping",
            f"must hold at most {MAX_MAPPING} entries")
    v.check(all(to.strip() for _, to in request.label_mapping), "spec.label_mapping",
            "must not map a label to an empty one")
    v.check(request.holdout_start_row >= 0, "spec.holdout_start_row", "must not be negative (0: a random share)")
    v.check(request.holdout_fraction == 0 or 0.05 <= request.holdout_fraction <= 0.5, "spec.holdout_fraction",
            "must be between 0.05 and 0.5 (0 means 0.2)")
    v.check(request.random_seed >= 0, "spec.random_seed", "must not be negative")
    v.check(len(request.description) <= MAX_TEXT, "spec.description", f"must be at most {MAX_TEXT} characters")
    v.raise_if_any()
    return replace(request, holdout_fraction=request.holdout_fraction or DEFAULT_HOLDOUT_FRACTION,
                   random_seed=request.random_seed or DEFAULT_SEED)


def training_path(training_dir: str, file: str) -> Path:
    """The file's path; FAILED_PRECONDITION when the service has no training directory."""
    if not training_dir:
        raise FailedPrecondition("training needs the service's training directory (CRM_FEEDBACK_TRAINING_DIR)",
                                 reason="NO_TRAINING_DIRECTORY")
    return Path(training_dir) / file
