"""Evaluate alert rules on one feed event, inside the feed consumer's transaction: the event is
applied, the rules evaluated, any alert raised and the cursor stored together, so each event is
evaluated once. A replayed or older event is refused by the read model's position guard and never
reaches here.

- profile's events: the customer follower's `after_apply` (contact-detail changes);
- feedback's complaints: the complaint follower's `on_new_complaint`, once per complaint, when
  risk records one it had not seen (complaints spike)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from crm_risk.alerting.model import Evidence
from crm_risk.alerting.service import Alerts
from crm_risk.alerts.model import AlertRule, Kind
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.customers.feed import ChangeEvent
from crm_risk.customers.repository import CustomerRepository
from crm_risk.triggers import feed, repository, rules
from crm_risk.triggers.model import FiledComplaint
from crmkit.db import UnitOfWork
from crmkit.logs import get_logger

log = get_logger("crm.risk.triggers")
MAX_RULES = 1000
REQUESTER = "system:alert-rules"


class AlertTriggers:
    def __init__(self, *, alerts: Alerts, alert_rules: AlertRuleRepository, customers: CustomerRepository,
                 digest_key: bytes) -> None:
        self._alerts = alerts
        self._rules = alert_rules
        self._customers = customers
        self._key = digest_key

    async def after_apply(self, uow: UnitOfWork, event: ChangeEvent) -> None:
        snapshot = feed.contact_snapshot(event, self._key)
        if snapshot is None:
            return
        changed = rules.changed_fields(await repository.digests(uow, snapshot.customer_id), snapshot.digests)
        await repository.store(uow, snapshot, changed)
        if not changed:
            return
        contact_rules = await self._rules.page(uow, after=None, limit=MAX_RULES,
                                               kind=Kind.CONTACT_DETAIL_CHANGES, enabled_only=True)
        if not contact_rules:
            return
        now = snapshot.occurred_at
        changes = await repository.changes_since(uow, snapshot.customer_id, now - rules.longest_window(contact_rules))
        for rule in contact_rules:
            firing = rules.contact_rule_fires(
                rule, changes, now=now,
                last_alert_at=await repository.last_alert_at(uow, rule.alert_rule_id, snapshot.customer_id))
            if firing is None:
                continue
            await self._raise(uow, rule, snapshot.customer_id, summary=rules.summary(rule, firing),
                              evidence=[Evidence(description=f"{c.field} changed",
                                                 resource=f"customers/{snapshot.customer_id}", occur_time=c.changed_at)
                                        for c in firing.changes],
                              trigger_time=now, reason="CONTACT_DETAIL_CHANGES",
                              inputs={"changes": float(len(firing.changes))})
            log.info("alert_rule_fired", alert_rule=rule.alert_rule_id, kind="CONTACT_DETAIL_CHANGES")

    async def on_new_complaint(self, uow: UnitOfWork, filed: FiledComplaint) -> None:
        """Complaints-spike rules, on a complaint risk has just recorded for the first time."""
        spike_rules = await self._rules.page(uow, after=None, limit=MAX_RULES, kind=Kind.COMPLAINTS_SPIKE,
                                             enabled_only=True)
        if not spike_rules:
            return
        now = filed.filed_at
        complaints = await repository.complaints_between(uow, filed.customer_id,
                                                         now - rules.longest_window(spike_rules), now)
        for rule in spike_rules:
            firing = rules.complaint_rule_fires(
                rule, complaints, now=now,
                last_alert_at=await repository.last_alert_at(uow, rule.alert_rule_id, filed.customer_id))
            if firing is None:
                continue
            await self._raise(uow, rule, filed.customer_id, summary=rules.complaint_summary(rule, firing),
                              evidence=[Evidence(description="complaint filed", resource=f"complaints/{c.complaint_id}",
                                                 occur_time=c.filed_at) for c in firing.complaints],
                              trigger_time=now, reason="COMPLAINTS_SPIKE",
                              inputs={"complaints": float(len(firing.complaints))})
            log.info("alert_rule_fired", alert_rule=rule.alert_rule_id, kind="COMPLAINTS_SPIKE")

    async def _raise(self, uow: UnitOfWork, rule: AlertRule, customer_id: str, *, summary: str,
                     evidence: Sequence[Evidence], trigger_time: datetime, reason: str,
                     inputs: dict[str, float]) -> None:
        """One alert of `rule` about the customer, with their book as the read model has it now."""
        found = await self._customers.find(uow, [customer_id], today=self._alerts.now().date())
        record = found.get(customer_id)
        await self._alerts.raise_alert(
            uow=uow, rule=rule, customer_id=customer_id,
            relationship_manager_id=record.relationship_manager_id if record else "",
            branch_id=record.branch_id if record else "", summary=summary, evidence=evidence,
            trigger_time=trigger_time, reason_codes=(reason,), inputs=inputs, requester=REQUESTER)
