"""Whether a product may be offered or sold to a customer: pure rules, no I/O.

The order of checks is the contract's: risk tolerance against the product's risk level (and
whether its assessment has expired), then age, KYC, vulnerability and overdue credit. Every rule that applies is
reported, blocking reasons first, so staff see the whole picture rather than the first obstacle.

The outcome: DENY when a reason blocks; else NEEDS_IN_PERSON_REVIEW when one asks for an
in-person review (a sale to a senior or vulnerable customer, or on an expired assessment: what
blocks marketing outright needs a member of staff with the customer for a sale); else ALLOW.

`CheckSuitability` names only the customer; their facts come from risk's own read model of
customers, fed by the profile change feed (`customers/repository.py`).
"""

from __future__ import annotations

import re
from datetime import date

from crm_risk.suitability.model import (
    CustomerFacts,
    Decision,
    Effect,
    KycStatus,
    Outcome,
    ProductRiskLevel,
    Purpose,
    Reason,
    ReasonCode,
    RuleSet,
)
from crmkit.resources import ResourceName
from crmkit.validation import Violations

DEFAULT_RULE_SET = RuleSet()
PRODUCT_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CUSTOMER_NAME = ResourceName("customers/{customer_id}")
MAX_CONTEXT = 200


def age_on(birth_date: date, today: date) -> int:
    """Completed years; someone born on 29 February turns a year older on 1 March in other years."""
    had_birthday = (today.month, today.day) >= (birth_date.month, birth_date.day)
    return today.year - birth_date.year - (0 if had_birthday else 1)


def age_of(facts: CustomerFacts, today: date) -> int | None:
    """Completed years from the date of birth when known, else the age the read model gives."""
    return age_on(facts.birth_date, today) if facts.birth_date is not None else facts.age_years


def decide(
    facts: CustomerFacts, *, product_risk_level: int, purpose: int, today: date,
    rule_set: RuleSet = DEFAULT_RULE_SET,
) -> Decision:
    level = ProductRiskLevel(product_risk_level)
    marketing = purpose != Purpose.SALE
    reasons: list[Reason] = []

    def add(code: ReasonCode, effect: Effect, message: str) -> None:
        reasons.append(Reason(code, effect, message))

    # Risk tolerance against the product's level: R1 for C1, R2 for C2, ...
    if facts.risk_tolerance == 0:
        if level > ProductRiskLevel.R1:
            add(ReasonCode.TOLERANCE_NOT_ASSESSED, Effect.BLOCK,
                f"Customer risk tolerance not assessed; product {level.name} is above R1")
    elif level > facts.risk_tolerance:
        add(ReasonCode.RISK_ABOVE_TOLERANCE, Effect.BLOCK,
            f"Product {level.name} exceeds customer tolerance C{facts.risk_tolerance}")
    if facts.risk_tolerance and facts.assessment_expiry is not None and facts.assessment_expiry < today \
            and level > ProductRiskLevel.R1:
        if marketing:
            add(ReasonCode.ASSESSMENT_EXPIRED, Effect.BLOCK,
                f"Customer risk assessment expired; product {level.name} is not marketed until it is renewed")
        else:
            add(ReasonCode.ASSESSMENT_EXPIRED, Effect.IN_PERSON_REVIEW,
                f"Customer risk assessment expired; reassess in person before selling {level.name}")

    # Age: the rules only bite above R1 (minors) and above R3 (seniors).
    age = age_of(facts, today)
    if age is None:
        if level > ProductRiskLevel.R1:
            add(ReasonCode.AGE_UNKNOWN, Effect.ADVISE, "Date of birth unknown; age rules could not be applied")
    else:
        if age < rule_set.adult_age and level > ProductRiskLevel.R1:
            add(ReasonCode.MINOR, Effect.BLOCK,
                f"Customer is under {rule_set.adult_age}; product {level.name} is above R1")
        if age >= rule_set.senior_age and level > rule_set.senior_max_level:
            senior = ProductRiskLevel(rule_set.senior_max_level).name
            if marketing:
                add(ReasonCode.SENIOR, Effect.BLOCK,
                    f"Customer is {rule_set.senior_age} or older; product {level.name} above {senior} "
                    "is not marketed")
            else:
                add(ReasonCode.SENIOR, Effect.IN_PERSON_REVIEW,
                    f"Customer is {rule_set.senior_age} or older; sell {level.name} only in person through the "
                    "enhanced, recorded sales process")

    if facts.kyc_status != KycStatus.VERIFIED and level > ProductRiskLevel.R1:
        add(ReasonCode.KYC_NOT_VERIFIED, Effect.BLOCK,
            f"KYC verification not complete; product {level.name} is above R1")

    if facts.vulnerable and level > ProductRiskLevel.R1:
        if marketing:
            add(ReasonCode.VULNERABLE_CUSTOMER, Effect.BLOCK,
                f"Customer is marked vulnerable; product {level.name} is not marketed")
        else:
            add(ReasonCode.VULNERABLE_CUSTOMER, Effect.IN_PERSON_REVIEW,
                f"Customer is marked vulnerable; selling {level.name} needs an in-person review with supervisor "
                "sign-off")

    if facts.credit_overdue and level > ProductRiskLevel.R1:
        if marketing:
            add(ReasonCode.CREDIT_OVERDUE, Effect.BLOCK,
                f"Customer has an overdue repayment; product {level.name} is not marketed")
        else:
            add(ReasonCode.CREDIT_OVERDUE, Effect.IN_PERSON_REVIEW,
                f"Customer has an overdue repayment; review their means in person before selling {level.name}")

    ordered = tuple(sorted(reasons, key=lambda r: (_EFFECT_ORDER[r.effect], r.code)))
    return Decision(outcome=outcome_of(ordered), reasons=ordered, customer_risk_tolerance=facts.risk_tolerance,
                    rule_set_version=rule_set.version)


# Blocking reasons first, then reviews, then advice.
_EFFECT_ORDER = {Effect.BLOCK: 0, Effect.IN_PERSON_REVIEW: 1, Effect.ADVISE: 2}


def outcome_of(reasons: tuple[Reason, ...]) -> Outcome:
    effects = {r.effect for r in reasons}
    if Effect.BLOCK in effects:
        return Outcome.DENY
    if Effect.IN_PERSON_REVIEW in effects:
        return Outcome.NEEDS_IN_PERSON_REVIEW
    return Outcome.ALLOW


def unknown_customer(rule_set: RuleSet = DEFAULT_RULE_SET) -> Decision:
    """The answer for a customer missing from the read model in a batch check."""
    reason = Reason(ReasonCode.CUSTOMER_UNKNOWN, Effect.BLOCK, "Customer is not in risk's read model")
    return Decision(outcome=Outcome.DENY, reasons=(reason,), customer_risk_tolerance=0,
                    rule_set_version=rule_set.version)


def validate_check(
    *, customers: list[str], product_code: str, product_risk_level: int, purpose: int, context: str,
    batch: bool,
) -> Violations:
    """Every bad field of a CheckSuitability(Batch) request, under the request's own field names."""
    v = Violations()
    if batch:
        v.check(1 <= len(customers) <= 1000, "customers", "must name 1 to 1000 customers")
        v.check(len(set(customers)) == len(customers), "customers", "must not name a customer twice")
    for i, name in enumerate(customers):
        field = f"customers[{i}]" if batch else "customer"
        CUSTOMER_NAME.check(name, field, v, required=True)
    if v.required(product_code, "product_code"):
        v.pattern(product_code, "product_code", PRODUCT_CODE, "must be 1 to 64 characters from A-Z a-z 0-9 _ -")
    v.enum(product_risk_level, "product_risk_level", frozenset(ProductRiskLevel), "ProductRiskLevel",
           required="is required: PRODUCT_RISK_LEVEL_R1 to PRODUCT_RISK_LEVEL_R5")
    v.enum(purpose, "purpose", frozenset(Purpose), "SuitabilityPurpose",
           required="is not a known SuitabilityPurpose")
    v.max_length(context, "context", MAX_CONTEXT)
    v.text(context, "context", multiline=True)
    return v
