"""The classifier registry's values: a training request as the service reads it, the worker's
job, a registered classifier, a prediction. Plain and picklable (they cross into a spawned worker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

KIND = "feedback.train"
# `textClassifiers/active-category`, `textClassifiers/active-sentiment`.
ACTIVE_PREFIX = "active-"


class Target(IntEnum):
    """crm.feedback.v1.TextClassifierTarget."""

    CATEGORY = 1
    SENTIMENT = 2

    @property
    def word(self) -> str:
        return self.name.lower()


class Status(IntEnum):
    """crm.feedback.v1.TextClassifierStatus."""

    CANDIDATE = 1
    ACTIVE = 2
    RETIRED = 3


@dataclass(frozen=True)
class TrainingRequest:
    """A TextClassifierTrainingSpec as the service reads it."""

    target: int
    file: str
    text_column: str
    label_column: str
    label_mapping: tuple[tuple[str, str], ...]
    holdout_start_row: int
    holdout_fraction: float
    random_seed: int
    activate: bool
    description: str


@dataclass(frozen=True)
class TrainingJob:
    """What a worker trains from: the CSV's path (in the training directory) and how to read it."""

    path: str
    target: Target
    text_column: str
    label_column: str
    label_mapping: tuple[tuple[str, str], ...]
    holdout_start_row: int
    holdout_fraction: float
    random_seed: int


@dataclass(frozen=True)
class RegisteredClassifier:
    """One registry row without its artifact; `metrics` is training.Metrics as a dict."""

    text_classifier_id: str
    version: int
    target: Target
    status: Status
    model_version: str
    training_spec: bytes
    labels: list[str]
    dropped_labels: list[str]
    metrics: dict[str, Any]
    tuning: list[Any]
    algorithm: str
    training_data_sha256: str
    artifact_sha256: str
    framework_version: str
    training_operation: str
    creator: str
    create_time: datetime
    activate_time: datetime | None
    retire_time: datetime | None

    @property
    def name(self) -> str:
        return f"textClassifiers/{self.text_classifier_id}"


@dataclass(frozen=True)
class Reading:
    """One classifier's reading of a text: every label with its probability, most likely first."""

    model_version: str
    ranked: tuple[tuple[str, float], ...]

    @property
    def label(self) -> str:
        return self.ranked[0][0]

    @property
    def probability(self) -> float:
        return self.ranked[0][1]

    def of(self, label: str) -> float:
        return next((p for name, p in self.ranked if name == label), 0.0)


@dataclass(frozen=True)
class Classification:
    """A text's classification: either reading is None when no classifier of its target is active."""

    language_code: str
    category: Reading | None
    sentiment: Reading | None


@dataclass(frozen=True)
class PredictedCategory:
    """What filing records when the category came from the classifier."""

    category: int
    label: str
    confidence: float
    model_version: str
