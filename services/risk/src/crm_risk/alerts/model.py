"""Alert rules as the service's code sees them: plain values, no protos.

Enum values are the proto's numbers. A rule's thresholds are one parameters value whose type
matches its kind (the proto's `parameters` oneof).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import IntEnum


class Kind(IntEnum):
    CONTACT_DETAIL_CHANGES = 1
    ABNORMAL_TRANSACTIONS = 2
    LARGE_OUTFLOWS = 3
    COMPLAINTS_SPIKE = 4


class Severity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


@dataclass(frozen=True)
class Money:
    """google.type.Money: whole units plus nano units of one ISO 4217 currency."""

    currency_code: str
    units: int = 0
    nanos: int = 0

    @property
    def amount(self) -> Decimal:
        return Decimal(self.units) + Decimal(self.nanos) / Decimal(1_000_000_000)


@dataclass(frozen=True)
class ContactDetailChanges:
    min_changes: int = 0
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class AbnormalTransactions:
    min_z_score: float = 0.0
    baseline_window: timedelta | None = None
    min_amount: Money | None = None
    min_transactions: int = 0


@dataclass(frozen=True)
class LargeOutflows:
    min_amount: Money | None = None
    min_balance_share: float = 0.0
    include_own_account_transfers: bool = False
    # Unset or zero: not used (the rule watches all outflows).
    before_maturity: timedelta | None = None


@dataclass(frozen=True)
class ComplaintsSpike:
    min_complaints: int = 0
    count_poor_survey_scores: bool = False


Parameters = ContactDetailChanges | AbnormalTransactions | LargeOutflows | ComplaintsSpike

# Kind -> (the proto's oneof field name, the parameters type).
PARAMETERS: dict[Kind, tuple[str, type[Parameters]]] = {
    Kind.CONTACT_DETAIL_CHANGES: ("contact_detail_changes", ContactDetailChanges),
    Kind.ABNORMAL_TRANSACTIONS: ("abnormal_transactions", AbnormalTransactions),
    Kind.LARGE_OUTFLOWS: ("large_outflows", LargeOutflows),
    Kind.COMPLAINTS_SPIKE: ("complaints_spike", ComplaintsSpike),
}


@dataclass
class AlertRule:
    alert_rule_id: str
    display_name: str
    kind: int
    severity: int
    # None where the request left a duration unset: the contract gives each its default.
    window: timedelta | None
    parameters: Parameters | None
    description: str = ""
    enabled: bool = False
    response_sla: timedelta | None = None
    cooldown: timedelta | None = None
    default_assignee: str = ""
    creator: str = ""
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"alertRules/{self.alert_rule_id}"

    @property
    def etag(self) -> str:
        return str(self.version)
