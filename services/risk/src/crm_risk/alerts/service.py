"""Alert rule orchestration, in the caller's unit of work (crmkit.db's rule); audit and change feed in the same
transaction."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence

from google.protobuf.message import Message

from crm_risk.alerting import repository as alert_repository
from crm_risk.alerts import rules
from crm_risk.alerts.model import AlertRule, Kind
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.tables import audit_record
from crmkit.audit import AuditEntry
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, FailedPrecondition, NotFound
from crmkit.idempotency import IdempotencyKeys, parse_request_id
from crmkit.locking import load_for_update
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

# Turns a stored rule into the change-feed payload; supplied by the API layer so this module
# stays free of generated protos.
FeedPayload = Callable[[AlertRule], Message]
RESOURCE_TYPE = "crm.risk.v1.AlertRule"


class AlertRules:
    """The alert rule use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(
        self, *, repository: AlertRuleRepository, outbox: Outbox, idempotency: IdempotencyKeys,
        page_tokens: PageTokens, feed_payload: FeedPayload,
    ) -> None:
        self._repository = repository
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload

    async def create(self, *, uow: UnitOfWork, rule: AlertRule, request_id: str, request: Message,
                     actor: Principal) -> AlertRule:
        if not rule.alert_rule_id:
            rule = dataclasses.replace(rule, alert_rule_id=f"rule-{uuid.uuid4().hex[:12]}")
        rule = dataclasses.replace(rule, display_name=rule.display_name.strip(), creator=actor.subject)
        violations = rules.validate(rule)
        key = parse_request_id(request_id, violations=violations)
        violations.raise_if_any()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=key, request=request, method="CreateAlertRule",
            resource_name=rule.name,
            replay=lambda name: self._existing(uow=uow, alert_rule_id=name.removeprefix("alertRules/")))
        if replayed is not None:
            return replayed
        created = await self._repository.insert(uow, rule)
        if created is None:
            raise AlreadyExists(f"alert rule {rule.alert_rule_id} already exists", reason="ALERT_RULE_EXISTS",
                                metadata={"alert_rule_id": rule.alert_rule_id})
        await self._record(uow=uow, rule=created, verb="create", change_type=ChangeType.CHANGE_TYPE_CREATED,
                           actor=actor)
        return created

    async def get(self, *, uow: UnitOfWork, name: str) -> AlertRule:
        return await self._existing(uow=uow, alert_rule_id=_id_from(name, "name"))

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str, kind: int,
                   enabled_only: bool) -> Page[AlertRule]:
        violations = Violations()
        violations.check(page_size >= 0, "page_size", "must not be negative")
        violations.enum(kind, "kind", frozenset(Kind), "AlertRuleKind")
        violations.raise_if_any()
        limit = clamp_page_size(page_size)
        query = {"kind": kind, "enabled_only": enabled_only}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page(uow, after=after, limit=limit + 1, kind=kind, enabled_only=enabled_only)
        return self._page_tokens.page(found, limit=limit, key=lambda rule: rule.alert_rule_id, query=query)

    async def update(self, *, uow: UnitOfWork, name: str, changes: AlertRule, paths: Sequence[str], etag: str,
                     actor: Principal) -> AlertRule:
        alert_rule_id = _id_from(name, "alert_rule.name")
        current = await load_for_update(
            self._repository.get(uow, alert_rule_id, for_update=True), etag=etag,
            not_found=lambda: _not_found(alert_rule_id),
            check=lambda found: rules.check_mask(paths, found.kind).raise_if_any())
        merged = rules.apply(current, changes, paths)
        merged = dataclasses.replace(merged, display_name=merged.display_name.strip())
        rules.validate(merged).raise_if_any()
        updated = await self._repository.update(uow, merged)
        await self._record(uow=uow, rule=updated, verb="update", change_type=ChangeType.CHANGE_TYPE_UPDATED,
                           actor=actor, detail=f"fields={','.join(sorted(paths))}")
        return updated

    async def delete(self, *, uow: UnitOfWork, name: str, etag: str, actor: Principal) -> None:
        alert_rule_id = _id_from(name, "name")
        current = await load_for_update(self._repository.get(uow, alert_rule_id, for_update=True), etag=etag,
                                        not_found=lambda: _not_found(alert_rule_id))
        # Raising an alert reads the rule, so the lock above keeps new alerts out until this commits.
        still_open = await alert_repository.count_open_for_rule(uow, alert_rule_id)
        if still_open:
            raise FailedPrecondition(f"alert rule {alert_rule_id} has {still_open} open alerts: disable it instead",
                                     reason="ALERT_RULE_HAS_OPEN_ALERTS",
                                     metadata={"alert_rule_id": alert_rule_id, "open_alerts": str(still_open)})
        await self._repository.delete(uow, alert_rule_id)
        await self._record(uow=uow, rule=current, verb="delete", change_type=ChangeType.CHANGE_TYPE_DELETED,
                           actor=actor)

    async def _existing(self, *, uow: UnitOfWork, alert_rule_id: str) -> AlertRule:
        found = await self._repository.get(uow, alert_rule_id)
        if found is None:
            raise _not_found(alert_rule_id)
        return found

    async def _record(self, *, uow: UnitOfWork, rule: AlertRule, verb: str, change_type: int, actor: Principal,
                      detail: str = "") -> None:
        """Audit the change and put it on the change feed, in the caller's transaction."""
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action=f"alert_rule.{verb}", resource_name=rule.name, purpose="RISK",
            justification=detail)])
        payload = None if change_type == ChangeType.CHANGE_TYPE_DELETED else self._feed_payload(rule)
        await self._outbox.append(uow, resource_name=rule.name, change_type=change_type, payload=payload,
                                  actor=actor.subject, resource_type=RESOURCE_TYPE)


def _id_from(name: str, field: str) -> str:
    return rules.ALERT_RULE_NAME.parse_one(name, field, required=True)


def _not_found(alert_rule_id: str) -> NotFound:
    return NotFound(f"alert rule {alert_rule_id} not found", reason="ALERT_RULE_NOT_FOUND")
