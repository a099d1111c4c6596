"""Evaluate alert rules on one feed event, inside the feed consumer's transaction: the event is
applied, the rules evaluated, any alert raised and the cursor stored together, so each event is
evaluated once. A replayed or older event is refused by the read model's position guard and never
reaches here.

- profile's events: the customer follower's `after_apply` (contact-detail changes);
- feedback's complaints: the complaint follower's `on_new_complaint`, once per complaint, when
  risk records one it had not seen (complaints spike);
- profile's `CustomerEvent` transactions: the read model's `on_customer_event`, which counts each
  transaction once in the customer's running statistics (a feed position guard per customer and
  direction) and evaluates the abnormal-transactions and large-outflows rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from crm_risk.alerting.model import Evidence
from crm_risk.alerting.service import Alerts
from crm_risk.alerts.model import AlertRule, Kind, LargeOutflows
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.customers.feed import ChangeEvent
from crm_risk.customers.repository import CustomerRepository
from crm_risk.triggers import feed, repository, rules
from crm_risk.triggers.model import Baseline, FiledComplaint, Maturing, Transaction
from crmkit.db import UnitOfWork
from crmkit.logs import get_logger

log = get_logger("crm.risk.triggers")
MAX_RULES = 1000
REQUESTER = "system:alert-rules"


class AlertTriggers:
    def __init__(self, *, alerts: Alerts, alert_rules: AlertRuleRepository, customers: CustomerRepository,
                 digest_key: bytes, currency: str = "CNY") -> None:
        """`currency`: the reporting currency, the only one transactions are read in."""
        self._alerts = alerts
        self._currency = currency
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

    async def on_customer_event(self, uow: UnitOfWork, event: ChangeEvent) -> bool:
        """Count a transaction of profile's feed once and evaluate the transaction rules on it;
        False when the event is no transaction in the reporting currency, or was counted already."""
        tx = feed.transaction_of(event, self._currency)
        if tx is None:
            return False
        before = await repository.claim_baseline(uow, tx)
        if before is None:
            return False
        await repository.store_baseline(uow, tx, before.add(float(tx.amount)))
        if tx.direction == rules.DEBIT:
            await repository.add_outflow(uow, tx, hour=rules.hour_of(tx.occurred_at),
                                         transfer=tx.kind == rules.TRANSFER,
                                         keep_after=tx.occurred_at - rules.OUTFLOW_RETENTION)
        await self._abnormal(uow, tx, before)
        if tx.direction == rules.DEBIT:
            await self._outflows(uow, tx)
        return True

    async def _abnormal(self, uow: UnitOfWork, tx: Transaction, before: Baseline) -> None:
        for rule in await self._rules.page(uow, after=None, limit=MAX_RULES, kind=Kind.ABNORMAL_TRANSACTIONS,
                                           enabled_only=True):
            z = rules.abnormal_z(rule, before, tx)
            if z is None or rule.window is None:
                continue
            await repository.record_abnormal(uow, rule.alert_rule_id, tx, z)
            found = rules.abnormal_rule_fires(
                rule, await repository.abnormal_between(uow, rule.alert_rule_id, tx.customer_id,
                                                        tx.occurred_at - rule.window, tx.occurred_at),
                now=tx.occurred_at,
                last_alert_at=await repository.last_alert_at(uow, rule.alert_rule_id, tx.customer_id))
            if found is None:
                continue
            await self._raise(uow, rule, tx.customer_id, summary=rules.abnormal_summary(rule, found), evidence=[
                _money_evidence(rules.abnormal_description(a), a.event, a.amount, self._currency, a.occurred_at)
                for a in found],
                trigger_time=tx.occurred_at, reason="ABNORMAL_TRANSACTIONS",
                inputs={"abnormal_transactions": float(len(found)), "baseline_count": float(before.count),
                        "baseline_mean": before.mean, "baseline_stddev": before.stddev})
            log.info("alert_rule_fired", alert_rule=rule.alert_rule_id, kind="ABNORMAL_TRANSACTIONS")

    async def _outflows(self, uow: UnitOfWork, tx: Transaction) -> None:
        balance: Decimal | None = None
        balance_read = False
        for rule in await self._rules.page(uow, after=None, limit=MAX_RULES, kind=Kind.LARGE_OUTFLOWS,
                                           enabled_only=True):
            if not rules.counts_as_outflow(rule, tx) or rule.window is None:
                continue
            assert isinstance(rule.parameters, LargeOutflows)
            total = await repository.outflow_between(
                uow, tx.customer_id, rules.hour_of(tx.occurred_at - rule.window), tx.occurred_at,
                transfers=rule.parameters.include_own_account_transfers)
            span = rules.maturity_span(rule, tx)
            maturing: list[Maturing] = []
            if span is not None:  # the run-up to maturities only, against the maturing holdings' balance
                maturing = await repository.maturing(uow, tx.customer_id, *span)
                if not maturing:
                    continue
                base = rules.maturing_balance(maturing)
            else:
                if not balance_read:
                    balance, balance_read = await repository.total_assets(uow, tx.customer_id), True
                base = balance
            firing = rules.outflow_rule_fires(
                rule, total=total, currency_code=self._currency, balance=base, now=tx.occurred_at,
                last_alert_at=await repository.last_alert_at(uow, rule.alert_rule_id, tx.customer_id))
            if firing is None:
                continue
            await self._raise(uow, rule, tx.customer_id, summary=rules.outflow_summary(rule, firing, self._currency),
                              evidence=[_money_evidence("outgoing transaction", tx.event, tx.amount, self._currency,
                                                        tx.occurred_at)] + [
                                  Evidence(description=f"holding matures on {m.maturity_date.isoformat()}",
                                           resource=f"customers/{tx.customer_id}/holdings/{m.holding_id}")
                                  for m in maturing],
                              trigger_time=tx.occurred_at, reason="LARGE_OUTFLOWS",
                              inputs={"outflow": float(firing.total),
                                      **({"balance_share": firing.share} if firing.share is not None else {})})
            log.info("alert_rule_fired", alert_rule=rule.alert_rule_id, kind="LARGE_OUTFLOWS")

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


def _money_evidence(description: str, resource: str, amount: Decimal, currency: str, at: datetime) -> Evidence:
    units = int(amount)
    return Evidence(description=description, resource=resource, occur_time=at, currency_code=currency, units=units,
                    nanos=int((amount - units) * 1_000_000_000))
