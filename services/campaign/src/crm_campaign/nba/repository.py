"""All SQL of next best action: one customer's facts from the read models and campaign's own
records, and the decisions. Never commits: the caller's unit of work does."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from crm_campaign.audience.inputs import ARBITRATION_WINDOW, PENDING, PLANNED_OR_MADE
from crm_campaign.audience.read_models import customer_contact, open_complaint, segment_member
from crm_campaign.campaigns.model import CampaignState, Money
from crm_campaign.campaigns.tables import campaign
from crm_campaign.dispatch.tables import dispatch
from crm_campaign.engagement.model import ResponseType
from crm_campaign.engagement.tables import offer_response
from crm_campaign.nba.model import Action, CustomerFacts, Decision, Excluded, Reason
from crm_campaign.nba.tables import nba_decision as t
from crm_campaign.offers.tables import offer
from crmkit.db import UnitOfWork


class DecisionRepository:
    async def customer(self, uow: UnitOfWork, customer_id: str) -> CustomerFacts:
        """The customer as the read models know them (`known` False when neither profile's nor
        segment's feed has named them)."""
        contact = (await uow.execute(sa.select(
            customer_contact, sa.exists().where(open_complaint.c.customer_id == customer_id).label("complaint"))
            .where(customer_contact.c.customer_id == customer_id))).first()
        segments = frozenset(f"segments/{s}" for s in (await uow.execute(
            sa.select(segment_member.c.segment_id).where(segment_member.c.customer_id == customer_id))).scalars())
        if contact is None:
            return CustomerFacts(customer_id=customer_id, known=bool(segments), segments=segments,
                                 open_complaint=bool(segments) and await self._complaint(uow, customer_id))
        return CustomerFacts(
            customer_id=customer_id, known=True, relationship_manager_id=contact.relationship_manager_id,
            segments=segments, held_products=frozenset(contact.held_products or ()),
            do_not_contact=bool(contact.do_not_contact), open_complaint=bool(contact.complaint),
            consented_channels=frozenset(contact.consented_channels or ()), preferred_channel=contact.preferred_channel)

    async def with_history(self, uow: UnitOfWork, facts: CustomerFacts, *, now: datetime, horizon: timedelta
                           ) -> CustomerFacts:
        """`facts` with the customer's contacts within `horizon` (dispatches planned or made, offers
        shown), declines and opt-outs, and other running campaigns' pending or recent dispatches."""
        customer_id = facts.customer_id
        contacts: list[tuple[str, int, datetime]] = []
        contact_at = sa.func.coalesce(dispatch.c.sent_at, dispatch.c.created_at)
        for made in (await uow.execute(
                sa.select(dispatch.c.campaign_id, dispatch.c.channel, contact_at.label("at"))
                .where(dispatch.c.customer_id == customer_id, dispatch.c.state.in_(PLANNED_OR_MADE),
                       contact_at > now - horizon))).all():
            contacts.append((made.campaign_id, made.channel, made.at))
        opted_out: set[int] = set()
        declined: set[str] = set()
        r = offer_response
        for response in (await uow.execute(
                sa.select(r.c.campaign_id, r.c.channel, r.c.type, r.c.response_time)
                .where(r.c.customer_id == customer_id,
                       sa.or_(r.c.type.in_([int(ResponseType.DECLINED), int(ResponseType.OPTED_OUT)]),
                              sa.and_(r.c.type == int(ResponseType.SHOWN), r.c.response_time > now - horizon))))
                ).all():
            if response.type == ResponseType.SHOWN:
                contacts.append((response.campaign_id, response.channel, response.response_time))
            elif response.type == ResponseType.DECLINED:
                declined.add(response.campaign_id)
            else:
                opted_out.add(response.channel)

        score = offer.c.priority * offer.c.expected_value_amount
        rivals = (sa.select(dispatch.c.campaign_id, dispatch.c.offer_id, dispatch.c.state, score.label("score"))
                  .join(campaign, campaign.c.campaign_id == dispatch.c.campaign_id)
                  .join(offer, sa.and_(offer.c.campaign_id == dispatch.c.campaign_id,
                                       offer.c.offer_id == dispatch.c.offer_id))
                  .where(dispatch.c.customer_id == customer_id, campaign.c.state == int(CampaignState.RUNNING),
                         sa.or_(dispatch.c.state.in_(PENDING),
                                sa.and_(dispatch.c.state.in_(PLANNED_OR_MADE),
                                        dispatch.c.sent_at > now - ARBITRATION_WINDOW))))
        dispatched = [(row.campaign_id, row.offer_id, float(row.score), row.state not in PENDING)
                      for row in (await uow.execute(rivals)).all()]
        return dataclasses.replace(facts, contacts=tuple(contacts), opted_out_channels=frozenset(opted_out),
                                   declined_campaigns=frozenset(declined), dispatched=tuple(dispatched))

    async def _complaint(self, uow: UnitOfWork, customer_id: str) -> bool:
        return bool(await uow.scalar(sa.select(sa.exists().where(open_complaint.c.customer_id == customer_id))))

    async def insert(self, uow: UnitOfWork, decision: Decision, now: datetime) -> Decision:
        await uow.execute(sa.insert(t).values(
            decision_id=decision.decision_id, customer_id=decision.customer_id, channel=decision.channel,
            requester=decision.requester, degraded_reasons=list(decision.degraded_reasons),
            actions=[_action_to_json(a) for a in decision.actions],
            excluded=[_excluded_to_json(e) for e in decision.excluded], created_at=now))
        return dataclasses.replace(decision, created_at=now)

    async def get(self, uow: UnitOfWork, decision_id: str) -> Decision | None:
        row = (await uow.execute(sa.select(t).where(t.c.decision_id == decision_id))).first()
        if row is None:
            return None
        return Decision(decision_id=row.decision_id, customer_id=row.customer_id, channel=row.channel,
                        requester=row.requester, actions=tuple(_action_from_json(a) for a in row.actions),
                        excluded=tuple(Excluded(**e) for e in row.excluded),
                        degraded_reasons=tuple(row.degraded_reasons), created_at=row.created_at)


def _action_to_json(action: Action) -> dict[str, Any]:
    value = action.expected_value
    return {"rank": action.rank, "campaign_id": action.campaign_id, "offer_id": action.offer_id,
            "product_code": action.product_code, "headline": action.headline, "template_id": action.template_id,
            "score": action.score,
            "expected_value": [value.currency_code, str(value.amount)] if value is not None else None,
            "reasons": [[r.code, r.description, r.weight] for r in action.reasons]}


def _action_from_json(data: dict[str, Any]) -> Action:
    value = data["expected_value"]
    return Action(rank=data["rank"], campaign_id=data["campaign_id"], offer_id=data["offer_id"],
                  product_code=data["product_code"], headline=data["headline"], template_id=data["template_id"],
                  score=data["score"], expected_value=Money(value[0], Decimal(value[1])) if value else None,
                  reasons=tuple(Reason(code, description, weight) for code, description, weight in data["reasons"]))


def _excluded_to_json(excluded: Excluded) -> dict[str, Any]:
    return {"campaign_id": excluded.campaign_id, "offer_id": excluded.offer_id,
            "product_code": excluded.product_code, "reason": excluded.reason, "description": excluded.description}
