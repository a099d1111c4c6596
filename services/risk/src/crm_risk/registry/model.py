"""The registry's values: what a training request asks for, the worker's job, a registered model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from crm_risk.churn.model import FeatureSpec, GroupAttributes, SnapshotTable, TrainingParams

KIND = "risk.train"
ACTIVE_ALIAS = "active"


class Status(IntEnum):
    """crm.risk.v1.ChurnModelStatus."""

    CANDIDATE = 1
    ACTIVE = 2
    RETIRED = 3


class Algorithm(IntEnum):
    """crm.risk.v1.ModelAlgorithm."""

    LOGISTIC_REGRESSION = 1
    RANDOM_FOREST = 2
    GRADIENT_BOOSTING = 3


class DataMode(IntEnum):
    """crm.risk.v1.TrainingDataMode (0, unspecified, means snapshot)."""

    HISTORY = 1
    SNAPSHOT = 2


@dataclass(frozen=True)
class TrainingRequest:
    """A TrainingSpec as the service reads it."""

    algorithm: int
    data_mode: int
    features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    label_attribute: str
    file: str
    id_attribute: str
    groups: GroupAttributes
    hyperparameters: tuple[tuple[str, str], ...]
    validation_fraction: float
    random_seed: int
    description: str
    # Train on the customer read model instead of `file`.
    read_model: bool = False


@dataclass(frozen=True)
class SnapshotJob:
    """What a worker trains from: a CSV file path (checked to lie in the training directory)."""

    path: str
    features: tuple[FeatureSpec, ...]
    label_attribute: str
    id_attribute: str
    groups: GroupAttributes
    params: TrainingParams
    # Read the customer read model instead of `path` (empty then); `table` is what was read.
    read_model: bool = False
    table: SnapshotTable | None = None


@dataclass(frozen=True)
class RegisteredModel:
    """One registry row without its artifact. The JSON parts are the churn core's dataclasses as
    dicts (`dataclasses.asdict`)."""

    churn_model_id: str
    version: int
    model_version: str
    status: Status
    algorithm: int
    training_spec: bytes
    features: list[dict[str, Any]]
    metrics: dict[str, Any]
    cross_validation: dict[str, Any] | None
    band_thresholds: dict[str, Any]
    fairness: dict[str, Any]
    training_data_sha256: str
    artifact_sha256: str
    framework_version: str
    training_operation: str
    creator: str
    create_time: datetime
    promoter: str
    promote_time: datetime | None
    retire_time: datetime | None
    status_reason: str
    revision: int

    @property
    def name(self) -> str:
        return f"churnModels/{self.churn_model_id}"

    @property
    def etag(self) -> str:
        return str(self.revision)
