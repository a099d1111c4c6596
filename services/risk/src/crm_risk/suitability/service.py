"""Suitability checks from risk's customer read model, each decision audited in the caller's
transaction (one insert for a whole batch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from crm_risk.customers.model import CustomerRecord
from crm_risk.customers.repository import CustomerFactsSource
from crm_risk.decisions.model import Decision as AuditedDecision
from crm_risk.decisions.model import DecisionType
from crm_risk.decisions.service import DecisionAudits
from crm_risk.suitability import rules
from crm_risk.suitability.model import CustomerFacts, Decision, KycStatus, RuleSet
from crmkit.auth import Principal
from crmkit.clock import Clock
from crmkit.db import UnitOfWork
from crmkit.errors import NotFound


@dataclass(frozen=True)
class SuitabilityCheck:
    """One answer: the decision, what it was about, and its audit record."""

    customer_id: str
    product_code: str
    product_risk_level: int
    decision: Decision
    data_as_of: datetime | None
    assessment_expiry: date | None
    decision_audit: str


class Suitability:
    def __init__(self, *, customers: CustomerFactsSource, decisions: DecisionAudits, clock: Clock,
                 rule_set: RuleSet = rules.DEFAULT_RULE_SET) -> None:
        self._customers = customers
        self._decisions = decisions
        self._clock = clock
        self._rule_set = rule_set

    async def check(self, *, uow: UnitOfWork, customer: str, product_code: str, product_risk_level: int,
                    purpose: int, context: str, actor: Principal) -> SuitabilityCheck:
        """NOT_FOUND when the read model does not hold the customer."""
        rules.validate_check(customers=[customer], product_code=product_code, product_risk_level=product_risk_level,
                             purpose=purpose, context=context, batch=False).raise_if_any()
        customer_id = rules.CUSTOMER_NAME.parse_one(customer, "customer")
        found = await self._customers.find(uow, [customer_id], today=self._clock().date())
        if customer_id not in found:
            raise NotFound(f"customer {customer_id} is not in risk's read model (yet)", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer": customer})
        [checked] = await self._decide(uow=uow, customer_ids=[customer_id], found=found, product_code=product_code,
                                       product_risk_level=product_risk_level, purpose=purpose, context=context,
                                       actor=actor)
        return checked

    async def check_batch(self, *, uow: UnitOfWork, customers: Sequence[str], product_code: str,
                          product_risk_level: int, purpose: int, context: str, actor: Principal
                          ) -> list[SuitabilityCheck]:
        """One answer per customer, in request order; unknown customers are denied, not an error."""
        rules.validate_check(customers=list(customers), product_code=product_code,
                             product_risk_level=product_risk_level, purpose=purpose, context=context,
                             batch=True).raise_if_any()
        customer_ids = [rules.CUSTOMER_NAME.parse_one(name, "customers") for name in customers]
        found = await self._customers.find(uow, customer_ids, today=self._clock().date())
        return await self._decide(uow=uow, customer_ids=customer_ids, found=found, product_code=product_code,
                                  product_risk_level=product_risk_level, purpose=purpose, context=context,
                                  actor=actor)

    async def _decide(self, *, uow: UnitOfWork, customer_ids: Sequence[str], found: dict[str, CustomerRecord],
                      product_code: str, product_risk_level: int, purpose: int, context: str, actor: Principal
                      ) -> list[SuitabilityCheck]:
        now = self._clock()
        today = now.date()
        decided: list[tuple[str, Decision, CustomerRecord | None]] = []
        for customer_id in customer_ids:
            record = found.get(customer_id)
            decision = (rules.unknown_customer(self._rule_set) if record is None else
                        rules.decide(record.facts, product_risk_level=product_risk_level, purpose=purpose,
                                     today=today, rule_set=self._rule_set))
            decided.append((customer_id, decision, record))
        audits = await self._decisions.record(uow=uow, decisions=[
            AuditedDecision(
                decision_type=DecisionType.SUITABILITY_CHECK, customer_id=customer_id,
                decided_by=f"suitability/{decision.rule_set_version}", decider_version=decision.rule_set_version,
                outcome=f"outcome={decision.outcome.name} allowed={str(decision.allowed).lower()} "
                        f"product={product_code}",
                reason_codes=tuple(r.code.name for r in decision.reasons),
                inputs=_inputs(record.facts if record else None, product_risk_level=product_risk_level,
                               purpose=purpose, today=today),
                context=context)
            for customer_id, decision, record in decided], requester=actor.subject, now=now)
        return [SuitabilityCheck(customer_id=customer_id, product_code=product_code,
                                 product_risk_level=product_risk_level, decision=decision,
                                 data_as_of=record.data_as_of if record else None,
                                 assessment_expiry=record.facts.assessment_expiry if record else None,
                                 decision_audit=audit)
                for (customer_id, decision, record), audit in zip(decided, audits, strict=True)]


def _inputs(facts: CustomerFacts | None, *, product_risk_level: int, purpose: int, today: date) -> dict[str, float]:
    """What the rules saw, as derived numbers (an age, not a date of birth)."""
    inputs = {"product_risk_level": float(product_risk_level), "purpose": float(purpose)}
    if facts is None:
        return {**inputs, "customer_known": 0.0}
    inputs.update(customer_known=1.0, risk_tolerance=float(facts.risk_tolerance),
                  kyc_verified=float(facts.kyc_status == KycStatus.VERIFIED), vulnerable=float(facts.vulnerable),
                  credit_overdue=float(facts.credit_overdue))
    age = rules.age_of(facts, today)
    if age is not None:
        inputs["age_years"] = float(age)
    if facts.assessment_expiry is not None:
        inputs["assessment_days_left"] = float((facts.assessment_expiry - today).days)
    return inputs
