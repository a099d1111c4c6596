"""All SQL about trigger rules. Never commits: the caller's unit of work does."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.campaigns.model import Money
from crm_campaign.triggers.model import ACTIONS, CONDITIONS, TriggerRule
from crm_campaign.triggers.tables import trigger_cooldown
from crm_campaign.triggers.tables import trigger_rule as t
from crmkit.db import UnitOfWork

_PLAIN_FIELDS = ("display_name", "description", "state", "population_segment", "fire_count", "creator")


def _value_to_json(value: object) -> object:
    if isinstance(value, timedelta):
        return {"days": value.days}
    if isinstance(value, Money):
        return {"currency_code": value.currency_code, "amount": str(value.amount)}
    if isinstance(value, tuple):
        return list(value)
    return value


def _value_from_json(value: object) -> object:
    if isinstance(value, dict) and "days" in value:
        return timedelta(days=value["days"])
    if isinstance(value, dict) and "currency_code" in value:
        return Money(value["currency_code"], Decimal(value["amount"]))
    if isinstance(value, list):
        return tuple(value)
    return value


def _case_to_json(rule: TriggerRule, cases: dict[str, Any]) -> dict[str, Any]:
    return {case: {field.name: _value_to_json(getattr(value, field.name)) for field in dataclasses.fields(value)}
            for case in cases if (value := getattr(rule, case)) is not None}


def _case_from_json(data: dict[str, Any], types: dict[str, type]) -> dict[str, Any]:
    return {case: types[case](**{name: _value_from_json(value) for name, value in fields.items()})
            for case, fields in data.items()}


def _to_row(rule: TriggerRule) -> dict[str, Any]:
    assert rule.cooldown is not None, "normalised before storing"
    row = {field: getattr(rule, field) for field in _PLAIN_FIELDS}
    row.update(
        event_type=int(rule.event_type),
        condition=_case_to_json(rule, CONDITIONS),
        campaign_id=rule.campaign_id,
        action=_case_to_json(rule, ACTIONS),
        cooldown_days=rule.cooldown.days,
    )
    return row


def from_row(row: Any) -> TriggerRule:
    return TriggerRule(
        trigger_rule_id=row.trigger_rule_id,
        **{field: getattr(row, field) for field in _PLAIN_FIELDS},
        **_case_from_json(row.condition, {case: kind for case, (kind, _) in CONDITIONS.items()}),
        **_case_from_json(row.action, ACTIONS),
        cooldown=timedelta(days=row.cooldown_days),
        last_fired_at=row.last_fired_at,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class TriggerRuleRepository:
    async def insert(self, uow: UnitOfWork, rule: TriggerRule) -> TriggerRule | None:
        """Insert; None when the rule id is taken."""
        statement = (
            pg.insert(t).values(trigger_rule_id=rule.trigger_rule_id, **_to_row(rule))
            .on_conflict_do_nothing(index_elements=[t.c.trigger_rule_id]).returning(t)
        )
        row = (await uow.execute(statement)).first()
        return from_row(row) if row is not None else None

    async def get(self, uow: UnitOfWork, trigger_rule_id: str, *, for_update: bool = False) -> TriggerRule | None:
        query = sa.select(t).where(t.c.trigger_rule_id == trigger_rule_id)
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        return from_row(row) if row is not None else None

    async def update(self, uow: UnitOfWork, rule: TriggerRule) -> TriggerRule:
        row = _to_row(rule)
        del row["fire_count"], row["creator"]  # kept by the firings and the create
        statement = (
            sa.update(t).where(t.c.trigger_rule_id == rule.trigger_rule_id)
            .values(**row, version=t.c.version + 1, updated_at=sa.func.now()).returning(t)
        )
        return from_row((await uow.execute(statement)).one())

    async def delete(self, uow: UnitOfWork, trigger_rule_id: str) -> None:
        """The rule and its cool-downs; its firings stay (what it did is kept)."""
        await uow.execute(sa.delete(t).where(t.c.trigger_rule_id == trigger_rule_id))
        await uow.execute(sa.delete(trigger_cooldown).where(trigger_cooldown.c.trigger_rule_id == trigger_rule_id))

    async def page(self, uow: UnitOfWork, *, after: tuple[str, str] | None, limit: int, event_type: int = 0,
                   state: int = 0, campaign_id: str = "") -> list[TriggerRule]:
        """Rules in (display_name, id) order, after the key of the last page."""
        query = sa.select(t).order_by(t.c.display_name, t.c.trigger_rule_id).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(t.c.display_name, t.c.trigger_rule_id) > sa.tuple_(*after))
        if event_type:
            query = query.where(t.c.event_type == event_type)
        if state:
            query = query.where(t.c.state == state)
        if campaign_id:
            query = query.where(t.c.campaign_id == campaign_id)
        return [from_row(row) for row in (await uow.execute(query)).all()]
