"""All SQL about trigger firings: the enabled rules for an event, the firing record whose unique
key stops a replayed event, the cool-down's conditional upsert, payroll months. Never commits."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.audience.read_models import segment_member
from crm_campaign.campaigns.model import Money
from crm_campaign.triggers.model import Firing, FiringOutcome, TriggerEventType, TriggerRule, TriggerRuleState
from crm_campaign.triggers.repository import from_row as rule_from_row
from crm_campaign.triggers.tables import trigger_cooldown, trigger_firing, trigger_payroll_month, trigger_rule
from crmkit.db import UnitOfWork


class FiringRepository:
    async def enabled_rules(self, uow: UnitOfWork, event_type: TriggerEventType) -> list[TriggerRule]:
        query = (sa.select(trigger_rule).where(trigger_rule.c.event_type == int(event_type),
                                               trigger_rule.c.state == int(TriggerRuleState.ENABLED))
                 .order_by(trigger_rule.c.trigger_rule_id))
        return [rule_from_row(row) for row in (await uow.execute(query)).all()]

    async def in_segment(self, uow: UnitOfWork, segment: str, customer_id: str) -> bool:
        found = await uow.scalar(sa.select(sa.literal(True)).where(
            segment_member.c.segment_id == segment.removeprefix("segments/"),
            segment_member.c.customer_id == customer_id))
        return bool(found)

    async def record(self, uow: UnitOfWork, firing: Firing) -> int | None:
        """The new firing's id; None when this rule already matched this customer's event."""
        statement = (pg.insert(trigger_firing).values(
            trigger_rule_id=firing.trigger_rule_id, customer_id=firing.customer_id, event_key=firing.event_key,
            event_type=int(firing.event_type), occurred_at=firing.occurred_at)
            .on_conflict_do_nothing(constraint="uq_trigger_firing_event")
            .returning(trigger_firing.c.trigger_firing_id))
        return await uow.scalar(statement)

    async def claim_cooldown(self, uow: UnitOfWork, *, trigger_rule_id: str, customer_id: str, at: datetime,
                             cooldown: timedelta) -> bool:
        """Whether the rule may act for the customer at `at`: it never has, or last did at least a
        cool-down before. Claimed atomically (a concurrent claim waits on the row and then fails)."""
        inserted = pg.insert(trigger_cooldown).values(trigger_rule_id=trigger_rule_id, customer_id=customer_id,
                                                      last_fired_at=at)
        statement = inserted.on_conflict_do_update(
            index_elements=[trigger_cooldown.c.trigger_rule_id, trigger_cooldown.c.customer_id],
            set_={"last_fired_at": inserted.excluded.last_fired_at},
            where=trigger_cooldown.c.last_fired_at <= inserted.excluded.last_fired_at - cooldown,
        ).returning(trigger_cooldown.c.last_fired_at)
        return (await uow.execute(statement)).first() is not None

    async def set_outcome(self, uow: UnitOfWork, firing_id: int, outcome: FiringOutcome, *, campaign_id: str = "",
                          offer_id: str = "", suppression_reason: int = 0) -> None:
        await uow.execute(sa.update(trigger_firing).where(trigger_firing.c.trigger_firing_id == firing_id).values(
            outcome=int(outcome), campaign_id=campaign_id, offer_id=offer_id,
            suppression_reason=suppression_reason))

    async def count_fire(self, uow: UnitOfWork, trigger_rule_id: str, at: datetime) -> None:
        """One more firing on the rule (not a change of the rule: its version and etag stay)."""
        last = trigger_rule.c.last_fired_at
        await uow.execute(sa.update(trigger_rule).where(trigger_rule.c.trigger_rule_id == trigger_rule_id).values(
            fire_count=trigger_rule.c.fire_count + 1,
            last_fired_at=sa.func.greatest(sa.func.coalesce(last, at), at)))

    async def firings(self, uow: UnitOfWork, trigger_rule_id: str) -> list[Firing]:
        query = (sa.select(trigger_firing).where(trigger_firing.c.trigger_rule_id == trigger_rule_id)
                 .order_by(trigger_firing.c.trigger_firing_id))
        return [Firing(trigger_rule_id=row.trigger_rule_id, customer_id=row.customer_id, event_key=row.event_key,
                       event_type=TriggerEventType(row.event_type), occurred_at=row.occurred_at,
                       outcome=FiringOutcome(row.outcome), campaign_id=row.campaign_id, offer_id=row.offer_id,
                       suppression_reason=row.suppression_reason)
                for row in (await uow.execute(query)).all()]

    async def record_payroll(self, uow: UnitOfWork, customer_id: str, month: date, amount: Money) -> None:
        inserted = pg.insert(trigger_payroll_month).values(customer_id=customer_id, month=month,
                                                           currency_code=amount.currency_code,
                                                           largest_amount=amount.amount)
        await uow.execute(inserted.on_conflict_do_update(
            index_elements=[trigger_payroll_month.c.customer_id, trigger_payroll_month.c.month,
                            trigger_payroll_month.c.currency_code],
            set_={"largest_amount": sa.func.greatest(trigger_payroll_month.c.largest_amount,
                                                     inserted.excluded.largest_amount)}))

    async def payroll_months(self, uow: UnitOfWork, customer_id: str) -> tuple[tuple[date, Money], ...]:
        rows = (await uow.execute(sa.select(trigger_payroll_month).where(
            trigger_payroll_month.c.customer_id == customer_id))).all()
        return tuple((row.month, Money(row.currency_code, Decimal(row.largest_amount))) for row in rows)
