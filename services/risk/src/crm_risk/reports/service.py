"""The reports' use cases, in the caller's unit of work: a customer's credit rating inputs (an
audited read), churn attribution and account flow over a period."""

from __future__ import annotations

from datetime import datetime

from crm_risk.customers.repository import CustomerFactsSource
from crm_risk.reports import repository, rules
from crm_risk.reports.model import ChurnReport, CreditInputs, FlowReport
from crm_risk.scoring.rules import CUSTOMER_NAME
from crm_risk.tables import audit_record
from crmkit.audit import AuditEntry
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.clock import Clock
from crmkit.db import UnitOfWork
from crmkit.errors import NotFound, PermissionDenied
from crmkit.resources import Purpose, check_purpose
from crmkit.validation import Violations

MAX_ID_LENGTH = 64


class Reports:
    def __init__(self, *, customers: CustomerFactsSource, attributes: rules.CreditAttributes, time_zone: str,
                 currency: str, clock: Clock) -> None:
        """`time_zone`: the bank's reporting time zone (IANA name), for reports that name none;
        `currency`: the reporting currency every amount is in."""
        zone = rules.zone_of(time_zone)
        if zone is None:
            raise ValueError(f"unknown reporting time zone {time_zone!r}")
        self._customers = customers
        self._attributes = attributes
        self._time_zone = time_zone
        self._zone = zone
        self._clock = clock
        self.currency = currency

    async def credit_inputs(self, *, uow: UnitOfWork, customer: str, purpose: Purpose, actor: Principal
                            ) -> CreditInputs:
        """INVALID_ARGUMENT naming every bad field; the read is audited."""
        v = Violations()
        CUSTOMER_NAME.check(customer, "customer", v, required=True)
        check_purpose(purpose, v)
        v.raise_if_any()
        customer_id = CUSTOMER_NAME.parse_one(customer, "customer")
        today = self._clock().date()
        record = (await self._customers.find(uow, [customer_id], today=today)).get(customer_id)
        facts = None if record is None else await repository.credit_facts(
            uow, customer_id, age_years=record.facts.age_years, today=today)
        if record is None or facts is None:
            raise NotFound(f"customer {customer_id} is not in risk's read model (yet)", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer": f"customers/{customer_id}"})
        if actor.is_relationship_manager_only and record.relationship_manager_id != actor.subject:
            raise PermissionDenied("relationship managers read customers of their own book only",
                                   reason="OUTSIDE_BOOK", metadata={"customer": f"customers/{customer_id}"})
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.credit_inputs.read", resource_name=f"customers/{customer_id}",
            purpose=purpose.purpose, justification=purpose.justification)])
        return rules.credit_inputs(facts, self._attributes, today=today)

    async def churn_report(self, *, uow: UnitOfWork, start: datetime | None, end: datetime | None, branch_id: str,
                           relationship_manager_id: str) -> ChurnReport:
        """Churn detected on the days starting in [start, end) of the reporting time zone."""
        v = Violations()
        rules.validate_churn_request(start, end, v)
        v.max_length(branch_id, "branch_id", MAX_ID_LENGTH)
        v.max_length(relationship_manager_id, "relationship_manager_id", MAX_ID_LENGTH)
        v.raise_if_any()
        assert start is not None and end is not None
        first_day, end_day = rules.days_of(start, end, self._zone)
        cases = await repository.churn_cases(
            uow, first_day=first_day, end_day=end_day, branch_id=branch_id,
            relationship_manager_id=relationship_manager_id, exit_reason_attribute=self._attributes.exit_reason)
        return rules.churn_report(cases, start=start, end=end, now=self._clock())

    async def flow_report(self, *, uow: UnitOfWork, start: datetime | None, end: datetime | None, granularity: int,
                          time_zone: str, branch_ids: list[str], product_codes: list[str]) -> FlowReport:
        v = Violations()
        zone_name = time_zone or self._time_zone
        chosen, _, periods = rules.validate_flow_request(start, end, granularity, zone_name, branch_ids,
                                                         product_codes, v)
        v.raise_if_any()
        assert start is not None and end is not None
        counts = await repository.flow_counts(uow, first_day=periods[0].first_day, end_day=periods[-1].end_day,
                                              branch_ids=branch_ids, product_codes=product_codes)
        return rules.flow_report(counts, periods=periods, granularity=chosen, time_zone=zone_name, start=start,
                                 end=end, now=self._clock())
