"""Alert use cases, in the caller's unit of work: raise (for the rule evaluator), read, list, the
workflow verbs, escalation of unanswered alerts (for the clock worker) and the response report.
Every change is audited and goes on the change feed in the same transaction; "now" is the
injected clock's.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime

from google.protobuf.message import Message

from crm_risk.alerting import repository, rules
from crm_risk.alerting.model import (
    Alert,
    AlertFilter,
    AlertStatus,
    Evidence,
    ResponseReport,
)
from crm_risk.alerts import rules as alert_rule_rules
from crm_risk.alerts.model import AlertRule
from crm_risk.decisions.model import Decision, DecisionType
from crm_risk.decisions.service import DecisionAudits
from crm_risk.tables import audit_record
from crmkit.audit import AuditEntry
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.clock import Clock
from crmkit.db import UnitOfWork
from crmkit.errors import NotFound, PermissionDenied
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

log = get_logger("crm.risk.alerts")

# Turns an alert into the change-feed payload as of a moment (breach depends on it); supplied by
# the API layer so this module stays free of generated protos.
FeedPayload = Callable[[Alert, datetime], Message]
ESCALATOR = "system:alert-escalator"


class Alerts:
    def __init__(self, *, outbox: Outbox, idempotency: IdempotencyKeys, page_tokens: PageTokens,
                 decisions: DecisionAudits, feed_payload: FeedPayload, clock: Clock, target_share: float) -> None:
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._decisions = decisions
        self._feed_payload = feed_payload
        self._clock = clock
        self._target_share = target_share

    def now(self) -> datetime:
        return self._clock()

    async def raise_alert(self, *, uow: UnitOfWork, rule: AlertRule, customer_id: str, relationship_manager_id: str,
                          branch_id: str, summary: str, evidence: Sequence[Evidence], trigger_time: datetime,
                          reason_codes: Sequence[str] = (), inputs: dict[str, float] | None = None,
                          requester: str = "system:alert-rules") -> Alert:
        """An OPEN alert from a rule that tripped, due by the rule's response SLA, assigned to its
        default assignee, with the decision audited."""
        alert_id = str(uuid.uuid4())
        [audit] = await self._decisions.record(uow=uow, decisions=[Decision(
            decision_type=DecisionType.ALERT_RAISED, customer_id=customer_id, decided_by=rule.name,
            decider_version=rule.etag, outcome=f"alert=alerts/{alert_id}", reason_codes=tuple(reason_codes),
            inputs=inputs or {})], requester=requester, now=self._clock())
        alert = await repository.insert(uow, Alert(
            alert_id=alert_id, alert_rule_id=rule.alert_rule_id, kind=rule.kind, severity=rule.severity,
            customer_id=customer_id, relationship_manager_id=relationship_manager_id, branch_id=branch_id,
            summary=summary, evidence=tuple(evidence)[-50:], status=AlertStatus.OPEN,
            assignee=rule.default_assignee, trigger_time=trigger_time,
            due_time=alert_rule_rules.alert_due_time(rule, triggered_at=trigger_time), decision_audit=audit,
            update_time=self._clock()))
        await self._publish(uow, alert, change_type=ChangeType.CHANGE_TYPE_CREATED, actor=requester)
        return alert

    async def get(self, *, uow: UnitOfWork, alert_id: str, actor: Principal) -> Alert:
        alert = await repository.get(uow, alert_id)
        if alert is None:
            raise _not_found(alert_id)
        _check_book(alert, actor)
        return alert

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str, where: AlertFilter, order_by: str,
                   actor: Principal) -> Page[Alert]:
        v = Violations()
        rules.validate_filter(where, v)
        order = rules.validate_order(order_by, v)
        v.raise_if_any()
        if actor.is_relationship_manager_only:
            where = replace(where, relationship_manager_id=actor.subject)
        limit = clamp_page_size(page_size)
        query = {"where": repr(where), "order": order}
        after = self._page_tokens.decode(page_token, query=query)
        found = await repository.page(uow, where=where, order=order, after=after, limit=limit + 1, now=self._clock())
        return self._page_tokens.page(found, limit=limit, key=lambda a: repository.page_key(a, order), query=query)

    async def acknowledge(self, *, uow: UnitOfWork, alert_id: str, etag: str, request_id: uuid.UUID | None,
                          message: Message, actor: Principal) -> Alert:
        return await self._step(uow=uow, alert_id=alert_id, etag=etag, request_id=request_id, message=message,
                                actor=actor, verb="acknowledge", check=rules.check_acknowledgeable,
                                change=lambda a: rules.acknowledge(a, now=self._clock()))

    async def assign(self, *, uow: UnitOfWork, alert_id: str, assignee: str, etag: str,
                     request_id: uuid.UUID | None, message: Message, actor: Principal) -> Alert:
        v = Violations()
        rules.validate_assignee(assignee, v)
        v.raise_if_any()
        return await self._step(uow=uow, alert_id=alert_id, etag=etag, request_id=request_id, message=message,
                                actor=actor, verb="assign", check=rules.check_open,
                                change=lambda a: rules.assign(a, assignee=assignee))

    async def resolve(self, *, uow: UnitOfWork, alert_id: str, outcome: int, note: str, etag: str,
                      request_id: uuid.UUID | None, message: Message, actor: Principal) -> Alert:
        v = Violations()
        rules.validate_resolution(outcome, note, v)
        v.raise_if_any()
        return await self._step(uow=uow, alert_id=alert_id, etag=etag, request_id=request_id, message=message,
                                actor=actor, verb="resolve", check=rules.check_open,
                                change=lambda a: rules.resolve(a, outcome=outcome, note=note, now=self._clock()))

    async def dismiss(self, *, uow: UnitOfWork, alert_id: str, reason: int, note: str, etag: str,
                      request_id: uuid.UUID | None, message: Message, actor: Principal) -> Alert:
        v = Violations()
        rules.validate_dismissal(reason, note, v)
        v.raise_if_any()
        return await self._step(uow=uow, alert_id=alert_id, etag=etag, request_id=request_id, message=message,
                                actor=actor, verb="dismiss", check=rules.check_open,
                                change=lambda a: rules.dismiss(a, reason=reason, note=note, now=self._clock()))

    async def escalate_due(self, *, uow: UnitOfWork, limit: int) -> Sequence[Alert]:
        """Escalate up to `limit` alerts still OPEN at their due time; each once, whichever replica
        gets to it first (the others skip the rows it holds)."""
        now = self._clock()
        escalated: list[Alert] = []
        for alert in await repository.due_unanswered(uow, now=now, limit=limit):
            if not rules.due_for_escalation(alert, now=now):
                continue
            changed = await repository.update(uow, replace(alert, status=AlertStatus.ESCALATED, escalate_time=now),
                                              now=now)
            await self._publish(uow, changed, change_type=ChangeType.CHANGE_TYPE_UPDATED, actor=ESCALATOR)
            escalated.append(changed)
        if escalated:
            await append_audit(uow, audit_record, [
                AuditEntry(principal=ESCALATOR, action="alert.escalate", resource_name=a.name, purpose="RISK")
                for a in escalated])
            log.info("alerts_escalated", count=len(escalated))
        return escalated

    async def response_report(self, *, uow: UnitOfWork, start: datetime | None, end: datetime | None,
                              kinds: tuple[int, ...], branch_id: str) -> ResponseReport:
        v = Violations()
        rules.validate_report_interval(start, end, v)
        v.raise_if_any()
        assert start is not None and end is not None
        now = self._clock()
        counts = await repository.response_counts(uow, start=start, end=end, kinds=kinds, branch_id=branch_id,
                                                  now=now)
        return ResponseReport(counts=counts, handled_in_time_share=rules.handled_in_time_share(counts),
                              target_share=self._target_share, interval_start=start, interval_end=end,
                              compute_time=now)

    async def _step(self, *, uow: UnitOfWork, alert_id: str, etag: str, request_id: uuid.UUID | None,
                    message: Message, actor: Principal, verb: str, check: Callable[[Alert], None],
                    change: Callable[[Alert], Alert]) -> Alert:
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=message, method=f"{verb.capitalize()}Alert",
            resource_name=f"alerts/{alert_id}", replay=lambda name: self._replayed(uow, name))
        if replayed is not None:
            return replayed
        current = await load_for_update(repository.get(uow, alert_id, for_update=True), etag=etag,
                                        not_found=lambda: _not_found(alert_id), check=check)
        changed = await repository.update(uow, change(current), now=self._clock())
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action=f"alert.{verb}", resource_name=changed.name, purpose="RISK")])
        await self._publish(uow, changed, change_type=ChangeType.CHANGE_TYPE_UPDATED, actor=actor.subject)
        return changed

    async def _replayed(self, uow: UnitOfWork, name: str) -> Alert:
        found = await repository.get(uow, name.removeprefix("alerts/"))
        if found is None:
            raise _not_found(name)
        return found

    async def _publish(self, uow: UnitOfWork, alert: Alert, *, change_type: int, actor: str) -> None:
        await self._outbox.append(uow, resource_name=alert.name, change_type=change_type,
                                  payload=self._feed_payload(alert, self._clock()), actor=actor)


OpenAlerts = Callable[[UnitOfWork, str], Awaitable[int]]


def count_open_for_rule(uow: UnitOfWork, alert_rule_id: str) -> Awaitable[int]:
    """How many open alerts a rule has raised (a rule with open alerts cannot be deleted)."""
    return repository.count_open_for_rule(uow, alert_rule_id)


def _check_book(alert: Alert, actor: Principal) -> None:
    if actor.is_relationship_manager_only and alert.relationship_manager_id != actor.subject:
        raise PermissionDenied("relationship managers see alerts of their own book only", reason="OUTSIDE_BOOK",
                               metadata={"alert": alert.name})


def _not_found(alert_id: str) -> NotFound:
    return NotFound(f"alert {alert_id} not found", reason="ALERT_NOT_FOUND", metadata={"alert_id": alert_id})
