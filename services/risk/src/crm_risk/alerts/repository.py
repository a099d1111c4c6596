"""All SQL about alert rules. Never commits: the caller's unit of work does."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.alerts.model import PARAMETERS, AlertRule, Kind, Money, Parameters
from crm_risk.alerts.tables import alert_rule as t
from crmkit.db import UnitOfWork

_PLAIN_FIELDS = (
    "display_name", "description", "kind", "severity", "enabled", "response_sla", "cooldown", "default_assignee",
)


def _encode(value: Any) -> Any:
    """A parameters value as JSON; money and durations tagged so they read back as themselves."""
    if isinstance(value, Money):
        return {"money": dataclasses.asdict(value)}
    if isinstance(value, timedelta):
        return {"microseconds": value // timedelta(microseconds=1)}
    if isinstance(value, tuple):
        return list(value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "money" in value:
        return Money(**value["money"])
    if isinstance(value, dict) and "microseconds" in value:
        return timedelta(microseconds=value["microseconds"])
    if isinstance(value, list):
        return tuple(value)
    return value


def encode_parameters(parameters: Parameters | None) -> dict[str, Any]:
    if parameters is None:
        return {}
    return {f.name: _encode(getattr(parameters, f.name)) for f in dataclasses.fields(parameters)}


def decode_parameters(kind: int, stored: dict[str, Any]) -> Parameters:
    _, parameters_type = PARAMETERS[Kind(kind)]
    known = {f.name for f in dataclasses.fields(parameters_type)}
    return parameters_type(**{name: _decode(value) for name, value in stored.items() if name in known})


class AlertRuleRepository:
    def _to_row(self, rule: AlertRule) -> dict[str, Any]:
        row = {field: getattr(rule, field) for field in _PLAIN_FIELDS}
        row.update(window_duration=rule.window, parameters=encode_parameters(rule.parameters))
        return row

    def _from_row(self, row: Any) -> AlertRule:
        return AlertRule(
            alert_rule_id=row.alert_rule_id,
            **{field: getattr(row, field) for field in _PLAIN_FIELDS},
            window=row.window_duration,
            parameters=decode_parameters(row.kind, row.parameters),
            creator=row.creator,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def insert(self, uow: UnitOfWork, rule: AlertRule) -> AlertRule | None:
        """Insert; None when the id is taken."""
        statement = (
            pg.insert(t)
            .values(alert_rule_id=rule.alert_rule_id, creator=rule.creator, **self._to_row(rule))
            .on_conflict_do_nothing(index_elements=[t.c.alert_rule_id])
            .returning(t)
        )
        row = (await uow.execute(statement)).first()
        return self._from_row(row) if row is not None else None

    async def get(self, uow: UnitOfWork, alert_rule_id: str, *, for_update: bool = False) -> AlertRule | None:
        query = sa.select(t).where(t.c.alert_rule_id == alert_rule_id)
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        return self._from_row(row) if row is not None else None

    async def update(self, uow: UnitOfWork, rule: AlertRule) -> AlertRule:
        statement = (
            sa.update(t)
            .where(t.c.alert_rule_id == rule.alert_rule_id)
            .values(**self._to_row(rule), version=t.c.version + 1, updated_at=sa.func.now())
            .returning(t)
        )
        return self._from_row((await uow.execute(statement)).one())

    async def delete(self, uow: UnitOfWork, alert_rule_id: str) -> None:
        await uow.execute(sa.delete(t).where(t.c.alert_rule_id == alert_rule_id))

    async def page(
        self, uow: UnitOfWork, *, after: str | None, limit: int, kind: int = 0, enabled_only: bool = False,
    ) -> Sequence[AlertRule]:
        query = sa.select(t).order_by(t.c.alert_rule_id).limit(limit)
        if after is not None:
            query = query.where(t.c.alert_rule_id > after)
        if kind:
            query = query.where(t.c.kind == kind)
        if enabled_only:
            query = query.where(t.c.enabled)
        return [self._from_row(row) for row in (await uow.execute(query)).all()]
