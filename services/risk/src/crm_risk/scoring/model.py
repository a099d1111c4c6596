"""Scores as plain values. Enum values are the proto's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from crm_risk.churn.model import Driver


class RiskBand(IntEnum):
    """crm.risk.v1.RiskBand."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3


@dataclass(frozen=True)
class Score:
    customer_id: str
    churn_model_id: str
    model_version: int
    probability: float
    risk_band: RiskBand
    drivers: tuple[Driver, ...]
    features_as_of: datetime | None
    score_time: datetime
    decision_audit: str
    relationship_manager_id: str = ""
    branch_id: str = ""

    @property
    def model(self) -> str:
        return f"churnModels/{self.churn_model_id}"
