"""Response-propensity models: what training is asked, and what it produced."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from crmkit.errors import FailedPrecondition


@dataclass(frozen=True)
class TrainingParams:
    offer_type: str
    held_out_fraction: float
    seed: int


@dataclass(frozen=True)
class Metrics:
    """Measures on the rows held out of training."""

    roc_auc: float
    average_precision: float
    brier_score: float
    expected_calibration_error: float
    training_rows: int
    held_out_rows: int
    positive_rate: float


@dataclass(frozen=True)
class TrainingRow:
    """One contact with a known outcome, as training reads it."""

    customer_id: str
    accepted: bool
    fields: dict[str, float | None]
    context: dict[str, float | str | bool]
    # The customer's features now, from profile (propensity.customer_features); empty if unknown.
    customer: dict[str, float | str | bool]


@dataclass(frozen=True)
class TrainedModel:
    """What a worker returns: the fitted estimator (pickled with its encoding) and its measures."""

    algorithm: str
    features: tuple[str, ...]
    metrics: Metrics
    data_fingerprint: str
    artifact: bytes

    @property
    def artifact_sha256(self) -> str:
        return hashlib.sha256(self.artifact).hexdigest()


@dataclass(frozen=True)
class PropensityModel:
    offer_type: str
    version: int
    algorithm: str
    features: tuple[str, ...]
    metrics: Metrics
    data_fingerprint: str
    seed: int
    creator: str
    created_at: datetime


@dataclass(frozen=True)
class LatestVersion:
    """An offer type's newest model as scoring needs to know it: which one, and its bytes' hash."""

    offer_type: str
    version: int
    artifact_sha256: str

    @property
    def name(self) -> str:
        return f"propensityModels/{self.offer_type}/versions/{self.version}"


class TooFewContacts(FailedPrecondition):
    def __init__(self, message: str) -> None:
        super().__init__(message=message, reason="TOO_FEW_CONTACTS")
