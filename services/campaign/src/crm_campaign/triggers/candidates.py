"""What the audience funnel needs about the one customer a trigger fired for, from the same read
models and dispatches a batch build reads (crm_campaign.audience.inputs), in a few queries."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from crm_campaign.audience.funnel import Candidate, PastContact, Plan, Rival
from crm_campaign.audience.inputs import ARBITRATION_WINDOW, PENDING, PLANNED_OR_MADE
from crm_campaign.audience.read_models import customer_contact, open_complaint, segment_member
from crm_campaign.campaigns.model import CampaignState
from crm_campaign.campaigns.tables import campaign
from crm_campaign.dispatch.tables import dispatch
from crm_campaign.offers.tables import offer
from crmkit.db import UnitOfWork


class TriggerCandidates:
    async def load(self, uow: UnitOfWork, plan: Plan, customer_id: str, *, now: datetime, cap_horizon: timedelta
                   ) -> Candidate:
        contact = (await uow.execute(sa.select(customer_contact).where(
            customer_contact.c.customer_id == customer_id))).first()
        complaint = await uow.scalar(sa.select(sa.literal(True)).where(open_complaint.c.customer_id == customer_id)
                                     .limit(1))
        segments = frozenset(f"segments/{s}" for s in (await uow.scalars(sa.select(segment_member.c.segment_id).where(
            segment_member.c.customer_id == customer_id))).all())
        contact_at = sa.func.coalesce(dispatch.c.sent_at, dispatch.c.created_at)
        contacts = tuple(PastContact(row.campaign_id, row.channel, row.at) for row in (await uow.execute(
            sa.select(dispatch.c.campaign_id, dispatch.c.channel, contact_at.label("at"))
            .where(dispatch.c.customer_id == customer_id, dispatch.c.state.in_(PLANNED_OR_MADE),
                   contact_at > now - cap_horizon))).all())
        # What the rival's offer scored when it was planned; before scores were kept, priority x value.
        score = sa.func.coalesce(dispatch.c.arbitration_score, offer.c.priority * offer.c.expected_value_amount)
        rivals = tuple(
            Rival(row.campaign_id, row.offer_id, float(row.score), sent=row.state not in PENDING,
                  dispatch_id=row.dispatch_id)
            for row in (await uow.execute(
                sa.select(dispatch.c.campaign_id, dispatch.c.offer_id, dispatch.c.dispatch_id, dispatch.c.state,
                          score.label("score"))
                .join(campaign, campaign.c.campaign_id == dispatch.c.campaign_id)
                .join(offer, sa.and_(offer.c.campaign_id == dispatch.c.campaign_id,
                                     offer.c.offer_id == dispatch.c.offer_id))
                .where(dispatch.c.customer_id == customer_id, dispatch.c.campaign_id != plan.campaign_id,
                       campaign.c.state == int(CampaignState.RUNNING),
                       sa.or_(dispatch.c.state.in_(PENDING),
                              sa.and_(dispatch.c.state.in_(PLANNED_OR_MADE),
                                      dispatch.c.sent_at > now - ARBITRATION_WINDOW))))).all())
        return Candidate(
            customer_id=customer_id, segments=segments,
            held_products=frozenset(contact.held_products if contact is not None else ()),
            do_not_contact=bool(contact is not None and contact.do_not_contact), open_complaint=bool(complaint),
            consented_channels=frozenset(contact.consented_channels if contact is not None else ()),
            reachable_channels=frozenset(contact.reachable_channels if contact is not None else ()),
            preferred_channel=contact.preferred_channel if contact is not None else 0,
            time_zone=contact.time_zone if contact is not None else "",
            # Risk is not asked on this path: every offer that needs a check is SUITABILITY_UNKNOWN.
            unsuitable_offers=None, contacts=contacts, rivals=rivals)
