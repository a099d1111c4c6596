"""All SQL about campaigns and their transitions. Never commits: the caller's unit of work does."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.campaigns import rules
from crm_campaign.campaigns.model import (
    Action,
    Campaign,
    CampaignState,
    ChannelCost,
    ContactPolicy,
    ControlGroup,
    FrequencyCap,
    Interval,
    Money,
    QuietHours,
    TimeOfDay,
    Transition,
)
from crm_campaign.campaigns.tables import campaign as t
from crm_campaign.campaigns.tables import campaign_transition as history
from crmkit.db import UnitOfWork

_PLAIN_FIELDS = (
    "display_name", "description", "type", "segment", "max_contacts", "creator", "submitter", "state_reason",
    "scheduled_launch_at", "launched_at", "closed_at", "audience_operation", "target_count", "control_count",
    "control_seed",
)


def _to_row(campaign: Campaign) -> dict[str, Any]:
    row = {field: getattr(campaign, field) for field in _PLAIN_FIELDS}
    row.update(
        state=int(campaign.state),
        active_start_at=campaign.active_period.start_time,
        active_end_at=campaign.active_period.end_time,
        contact_policy=_policy_to_json(campaign.contact_policy),
        holdout_percentage=campaign.control_group.holdout_percentage,
        attribution_window_seconds=(int(campaign.attribution_window.total_seconds())
                                    if campaign.attribution_window is not None else None),
        fixed_cost_currency=campaign.fixed_cost.currency_code if campaign.fixed_cost else None,
        fixed_cost_amount=campaign.fixed_cost.amount if campaign.fixed_cost else None,
        channel_costs=[_cost_to_json(c) for c in campaign.channel_costs],
    )
    return row


def _from_row(row: Any) -> Campaign:
    return Campaign(
        campaign_id=row.campaign_id,
        **{field: getattr(row, field) for field in _PLAIN_FIELDS},
        state=CampaignState(row.state),
        active_period=Interval(row.active_start_at, row.active_end_at),
        contact_policy=_policy_from_json(row.contact_policy),
        control_group=ControlGroup(Decimal(row.holdout_percentage)),
        attribution_window=(timedelta(seconds=row.attribution_window_seconds)
                            if row.attribution_window_seconds is not None else None),
        fixed_cost=(Money(row.fixed_cost_currency, Decimal(row.fixed_cost_amount))
                    if row.fixed_cost_currency is not None else None),
        channel_costs=tuple(_cost_from_json(c) for c in row.channel_costs),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _time_to_json(value: TimeOfDay | None) -> list[int] | None:
    return None if value is None else [value.hours, value.minutes, value.seconds, value.nanos]


def _time_from_json(value: list[int] | None) -> TimeOfDay | None:
    return None if value is None else TimeOfDay(*value)


def _policy_to_json(policy: ContactPolicy) -> dict[str, Any]:
    quiet = policy.quiet_hours
    return {
        "channels": list(policy.channels),
        "channel_strategy": policy.channel_strategy,
        "frequency_caps": [
            {"max_contacts": c.max_contacts, "period_days": c.period.days if c.period is not None else None,
             "channel": c.channel, "scope": c.scope}
            for c in policy.frequency_caps],
        "quiet_hours": None if quiet is None else {
            "start": _time_to_json(quiet.start), "end": _time_to_json(quiet.end),
            "quiet_days": list(quiet.quiet_days), "time_zone": quiet.time_zone},
    }


def _policy_from_json(data: dict[str, Any]) -> ContactPolicy:
    quiet = data.get("quiet_hours")
    return ContactPolicy(
        channels=tuple(data["channels"]),
        channel_strategy=data["channel_strategy"],
        frequency_caps=tuple(
            FrequencyCap(max_contacts=c["max_contacts"],
                         period=timedelta(days=c["period_days"]) if c["period_days"] is not None else None,
                         channel=c["channel"], scope=c["scope"])
            for c in data["frequency_caps"]),
        quiet_hours=None if quiet is None else QuietHours(
            start=_time_from_json(quiet["start"]), end=_time_from_json(quiet["end"]),
            quiet_days=tuple(quiet["quiet_days"]), time_zone=quiet["time_zone"]),
    )


def _cost_to_json(cost: ChannelCost) -> dict[str, Any]:
    money = cost.cost_per_contact
    return {"channel": cost.channel, "currency_code": money.currency_code if money else None,
            "amount": str(money.amount) if money else None}


def _cost_from_json(data: dict[str, Any]) -> ChannelCost:
    money = Money(data["currency_code"], Decimal(data["amount"])) if data["currency_code"] is not None else None
    return ChannelCost(channel=data["channel"], cost_per_contact=money)


class CampaignRepository:
    async def insert(self, uow: UnitOfWork, campaign: Campaign) -> Campaign | None:
        """Insert; None when the campaign id is taken."""
        statement = (
            pg.insert(t).values(campaign_id=campaign.campaign_id, **_to_row(campaign))
            .on_conflict_do_nothing(index_elements=[t.c.campaign_id]).returning(t)
        )
        row = (await uow.execute(statement)).first()
        return _from_row(row) if row is not None else None

    async def get(self, uow: UnitOfWork, campaign_id: str, *, for_update: bool = False) -> Campaign | None:
        query = sa.select(t).where(t.c.campaign_id == campaign_id)
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        if row is None:
            return None
        [found] = await self._with_history(uow, [_from_row(row)])
        return found

    async def update(self, uow: UnitOfWork, campaign: Campaign) -> Campaign:
        statement = (
            sa.update(t).where(t.c.campaign_id == campaign.campaign_id)
            .values(**_to_row(campaign), version=t.c.version + 1, updated_at=sa.func.now())
            .returning(t)
        )
        [updated] = await self._with_history(uow, [_from_row((await uow.execute(statement)).one())])
        return updated

    async def add_audience_counts(self, uow: UnitOfWork, campaign_id: str, *, target: int, control: int) -> None:
        """Counts kept on the campaign as a build adds a wave; not a change of what was approved,
        so neither the version (etag) nor `updated_at` moves."""
        await uow.execute(sa.update(t).where(t.c.campaign_id == campaign_id).values(
            target_count=t.c.target_count + target, control_count=t.c.control_count + control))

    async def set_audience_operation(self, uow: UnitOfWork, campaign_id: str, operation_name: str) -> None:
        """The campaign's latest real audience build (not a change of what was approved: no new etag)."""
        await uow.execute(sa.update(t).where(t.c.campaign_id == campaign_id).values(
            audience_operation=operation_name))

    async def delete(self, uow: UnitOfWork, campaign_id: str) -> None:
        await uow.execute(sa.delete(t).where(t.c.campaign_id == campaign_id))

    async def record_transition(self, uow: UnitOfWork, campaign_id: str, step: Transition) -> None:
        await uow.execute(sa.insert(history).values(
            campaign_id=campaign_id, action=step.action.value, from_state=int(step.from_state),
            to_state=int(step.to_state), actor=step.actor, comment=step.comment, occurred_at=step.occurred_at))

    async def transitions(self, uow: UnitOfWork, campaign_id: str) -> list[Transition]:
        query = (sa.select(history).where(history.c.campaign_id == campaign_id)
                 .order_by(history.c.campaign_transition_id))
        return [_transition(row) for row in (await uow.execute(query)).all()]

    async def page(
        self, uow: UnitOfWork, *, after: tuple[datetime, str] | None, limit: int, states: Sequence[int] = (),
        type_: int = 0, segment: str = "", creator: str = "", active_during: Interval | None = None,
    ) -> list[Campaign]:
        """Campaigns most recently updated first, after the (updated_at, id) of the last page."""
        query = sa.select(t).order_by(t.c.updated_at.desc(), t.c.campaign_id.desc()).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(t.c.updated_at, t.c.campaign_id) < sa.tuple_(*after))
        if states:
            query = query.where(t.c.state.in_([int(s) for s in states]))
        if type_:
            query = query.where(t.c.type == type_)
        if segment:
            query = query.where(t.c.segment == segment)
        if creator:
            query = query.where(t.c.creator == creator)
        if active_during is not None:
            # Overlap of half-open intervals, either end of either open.
            if active_during.end_time is not None:
                query = query.where(sa.or_(t.c.active_start_at.is_(None), t.c.active_start_at < active_during.end_time))
            if active_during.start_time is not None:
                query = query.where(sa.or_(t.c.active_end_at.is_(None), t.c.active_end_at > active_during.start_time))
        found = [_from_row(row) for row in (await uow.execute(query)).all()]
        return await self._with_history(uow, found)

    async def running(self, uow: UnitOfWork) -> list[Campaign]:
        """Every RUNNING campaign, in id order, without approval history (next best action's catalogue)."""
        query = sa.select(t).where(t.c.state == int(CampaignState.RUNNING)).order_by(t.c.campaign_id)
        return [_from_row(row) for row in (await uow.execute(query)).all()]

    async def _with_history(self, uow: UnitOfWork, campaigns: list[Campaign]) -> list[Campaign]:
        """The campaigns with their approval history, read in one query."""
        if not campaigns:
            return campaigns
        query = (sa.select(history)
                 .where(history.c.campaign_id.in_([c.campaign_id for c in campaigns]),
                        history.c.action.in_([Action.APPROVE.value, Action.REJECT.value]))
                 .order_by(history.c.campaign_transition_id))
        by_campaign: dict[str, list[Transition]] = defaultdict(list)
        for row in (await uow.execute(query)).all():
            by_campaign[row.campaign_id].append(_transition(row))
        return [dataclasses.replace(c, approval_history=rules.approval_history(by_campaign[c.campaign_id]))
                for c in campaigns]


def _transition(row: Any) -> Transition:
    return Transition(action=Action(row.action), from_state=CampaignState(row.from_state),
                      to_state=CampaignState(row.to_state), actor=row.actor, comment=row.comment,
                      occurred_at=row.occurred_at)
