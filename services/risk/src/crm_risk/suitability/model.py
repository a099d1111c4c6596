"""Suitability as the service's code sees it. Enum values are the proto's numbers (and, for
risk tolerance and KYC status, the profile service's, which risk mirrors)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import IntEnum


class ProductRiskLevel(IntEnum):
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5


class Purpose(IntEnum):
    UNSPECIFIED = 0  # treated as MARKETING, the stricter purpose
    MARKETING = 1
    SALE = 2


class KycStatus(IntEnum):
    UNSPECIFIED = 0
    PENDING = 1
    VERIFIED = 2
    EXPIRED = 3
    REJECTED = 4


class ReasonCode(IntEnum):
    RISK_ABOVE_TOLERANCE = 1
    TOLERANCE_NOT_ASSESSED = 2
    KYC_NOT_VERIFIED = 3
    MINOR = 4
    SENIOR = 5
    AGE_UNKNOWN = 6
    VULNERABLE_CUSTOMER = 7
    CUSTOMER_UNKNOWN = 8
    ASSESSMENT_EXPIRED = 9
    CREDIT_OVERDUE = 10


class Effect(IntEnum):
    BLOCK = 1
    ADVISE = 2
    IN_PERSON_REVIEW = 3


class Outcome(IntEnum):
    """crm.risk.v1.SuitabilityOutcome."""

    ALLOW = 1
    DENY = 2
    NEEDS_IN_PERSON_REVIEW = 3


@dataclass(frozen=True)
class CustomerFacts:
    """What the check knows about the customer, from risk's read model of the profile feed."""

    risk_tolerance: int  # 0 not assessed, 1 (C1, conservative) to 5 (C5, aggressive)
    kyc_status: int
    birth_date: date | None
    vulnerable: bool = False
    # The last day the risk assessment is valid; None when unknown (or never assessed).
    assessment_expiry: date | None = None
    # The age in whole years when the date of birth is not known to risk (profile shows a
    # service the birth year only; the read model derives a never-overstated age).
    age_years: int | None = None
    # The credit system flags an overdue repayment (a profile custom attribute).
    credit_overdue: bool = False


@dataclass(frozen=True)
class RuleSet:
    """The rule set's settings (the contract's defaults) and the version decisions cite."""

    version: str = "2026.12"
    adult_age: int = 18
    senior_age: int = 65
    # Highest product level marketed freely to seniors; above it the SENIOR rule applies.
    senior_max_level: int = ProductRiskLevel.R3


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    effect: Effect
    message: str


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reasons: tuple[Reason, ...]
    customer_risk_tolerance: int
    rule_set_version: str

    @property
    def allowed(self) -> bool:
        return self.outcome == Outcome.ALLOW
