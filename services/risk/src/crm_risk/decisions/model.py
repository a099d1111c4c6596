"""Decision audit records as plain values. Enum values are the proto's numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum


class DecisionType(IntEnum):
    """crm.risk.v1.DecisionType."""

    CHURN_SCORE = 1
    SUITABILITY_CHECK = 2
    ALERT_RAISED = 3


@dataclass(frozen=True)
class Decision:
    """One decision to record; the id, time, requester and trace come from the recording."""

    decision_type: DecisionType
    customer_id: str
    decided_by: str
    decider_version: str
    outcome: str
    reason_codes: tuple[str, ...] = ()
    inputs: dict[str, float] = field(default_factory=dict)
    context: str = ""


@dataclass(frozen=True)
class DecisionAudit:
    decision_audit_id: str
    sequence: int
    decision_type: DecisionType
    customer_id: str
    decided_by: str
    decider_version: str
    outcome: str
    reason_codes: tuple[str, ...]
    inputs: dict[str, float]
    inputs_sha256: str
    context: str
    requester: str
    trace_id: str
    decide_time: datetime

    @property
    def name(self) -> str:
        return f"decisionAudits/{self.decision_audit_id}"


@dataclass(frozen=True)
class DecisionFilter:
    customer_id: str = ""
    decision_type: int = 0
    decided_by: str = ""
    context: str = ""
    decide_from: datetime | None = None
    decide_before: datetime | None = None
