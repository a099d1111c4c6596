"""The read model's pure parts: a stored row's facts for the decisions, and the settings naming
the attributes that carry vulnerability, the assessment's expiry and overdue credit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from crm_risk.suitability.model import CustomerFacts

_CUSTOMER_OF = re.compile(r"customers/([^/]+)(?:/.*)?")
ACTIVE_STATE = 1  # crm.profile.v1.CustomerState.CUSTOMER_STATE_ACTIVE
HOLDING_TYPE = "crm.profile.v1.Holding"
# Profile's customer events: the transaction alert rules read the transactions among them.
EVENT_TYPE = "crm.profile.v1.CustomerEvent"
FOLLOWED_TYPES = ("crm.profile.v1.Customer", "crm.profile.v1.CustomerFeatures", HOLDING_TYPE, EVENT_TYPE)
_HOLDING_OF = re.compile(r"customers/[^/]+/holdings/([^/]+)")


@dataclass(frozen=True)
class AttributeNames:
    """Custom attribute ids (profile's catalogue) read into the model; empty: not read."""

    assessment_expiry: str = "risk_assessment_expires_on"
    vulnerable: str = "vulnerable_customer"
    credit_overdue: str = "credit_overdue"


def customer_id_of(resource_name: str) -> str | None:
    """The customer a profile resource belongs to (`customers/{id}[/...]`); None for others."""
    matched = _CUSTOMER_OF.fullmatch(resource_name)
    return matched[1] if matched else None


def holding_id_of(resource_name: str) -> str | None:
    """The holding of `customers/{customer_id}/holdings/{holding_id}`; None for others."""
    matched = _HOLDING_OF.fullmatch(resource_name)
    return matched[1] if matched else None


def current_age(*, age_years: int | None, age_on: date | None, birth_year: int | None, today: date) -> int | None:
    """The customer's age today, never overstated: profile's exact age plus the whole years since
    it was computed; else, from the birth year alone, the younger of the two possible ages (so a
    minor is never taken for an adult)."""
    if age_years is not None and age_on is not None:
        whole_years = today.year - age_on.year - (1 if (today.month, today.day) < (age_on.month, age_on.day) else 0)
        return age_years + max(whole_years, 0)
    if birth_year:
        return today.year - birth_year - 1
    return None


def scoring_values(feature_values: Mapping[str, str | float], *, age_years: int | None) -> dict[str, str | float]:
    """What churn models train and score on: the stored inputs, with the customer's current age
    (`current_age`) as `age_years` when profile gives one; else an `age_years` custom attribute
    (an age a source file stated, e.g. the churn mapping's) stays as it is."""
    values = dict(feature_values)
    if age_years is not None:
        values["age_years"] = float(age_years)
    return values


def facts(*, risk_tolerance: int, kyc_status: int, vulnerable: bool, assessment_expiry: date | None,
          age_years: int | None, age_on: date | None, birth_year: int | None, today: date,
          credit_overdue: bool = False) -> CustomerFacts:
    return CustomerFacts(risk_tolerance=risk_tolerance, kyc_status=kyc_status, birth_date=None, vulnerable=vulnerable,
                         assessment_expiry=assessment_expiry,
                         age_years=current_age(age_years=age_years, age_on=age_on, birth_year=birth_year,
                                               today=today), credit_overdue=credit_overdue)
