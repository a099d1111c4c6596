"""Early warnings as plain values. Enum values are the proto's numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from crm_risk.churn.model import Driver


class ReasonKind(IntEnum):
    """crm.risk.v1.EarlyWarningReasonKind."""

    HIGH_CHURN_RISK = 1
    RISING_CHURN_RISK = 2
    ASSET_DECLINE = 3
    LARGE_OUTFLOW = 4
    DISSATISFACTION = 5
    INACTIVITY = 6
    OPEN_ALERT = 7


class RetentionAction(IntEnum):
    """crm.risk.v1.EarlyWarningAction."""

    WORK_OPEN_ALERT = 1
    CALL_ABOUT_OUTFLOW = 2
    RE_ENGAGE = 3
    PRODUCT_REVIEW = 4
    RELATIONSHIP_REVIEW = 5


@dataclass(frozen=True)
class Candidate:
    """One customer's row as the list query reads it: the current score (if any) and open alerts."""

    customer_id: str
    relationship_manager_id: str
    branch_id: str
    churn_model_id: str
    probability: float | None
    risk_band: int
    drivers: tuple[Driver, ...]
    score_time: datetime | None
    open_alerts: int
    open_large_outflows: int
    first_alert_time: datetime | None


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    description: str
    observe_time: datetime | None


@dataclass(frozen=True)
class EarlyWarning:
    candidate: Candidate
    reasons: tuple[Reason, ...]
    action: RetentionAction
    action_description: str
    first_flag_time: datetime | None


@dataclass(frozen=True)
class WarningFilter:
    relationship_manager_id: str = ""
    branch_id: str = ""
    min_risk_band: int = 0
    reason_kinds: tuple[int, ...] = ()
