"""Evaluate alert rules on one profile event, inside the feed consumer's transaction (the
customer follower's `after_apply`): the event is applied, the rules evaluated, any alert raised
and the cursor stored together, so each event is evaluated once. A replayed or older event is
refused by the read model's position guard and never reaches here."""

from __future__ import annotations

from crm_risk.alerting.model import Evidence
from crm_risk.alerting.service import Alerts
from crm_risk.alerts.model import Kind
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.customers.feed import ChangeEvent
from crm_risk.customers.repository import CustomerRepository
from crm_risk.triggers import feed, repository, rules
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
            found = await self._customers.find(uow, [snapshot.customer_id], today=self._alerts.now().date())
            record = found.get(snapshot.customer_id)
            await self._alerts.raise_alert(
                uow=uow, rule=rule, customer_id=snapshot.customer_id,
                relationship_manager_id=record.relationship_manager_id if record else "",
                branch_id=record.branch_id if record else "", summary=rules.summary(rule, firing),
                evidence=[Evidence(description=f"{c.field} changed", resource=f"customers/{snapshot.customer_id}",
                                   occur_time=c.changed_at) for c in firing.changes],
                trigger_time=now, reason_codes=("CONTACT_DETAIL_CHANGES",),
                inputs={"changes": float(len(firing.changes))}, requester=REQUESTER)
            log.info("alert_rule_fired", alert_rule=rule.alert_rule_id, kind="CONTACT_DETAIL_CHANGES")
