"""Loads what the funnel needs about a campaign's candidates, from the read models and the
service's own dispatches, in a handful of set-based queries (no per-customer round trips)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from crm_campaign.audience.funnel import Candidate, PastContact, Plan, Rival
from crm_campaign.audience.read_models import customer_contact, open_complaint, segment_member
from crm_campaign.campaigns.model import CampaignState
from crm_campaign.campaigns.tables import campaign
from crm_campaign.care.model import CareTaskState
from crm_campaign.care.tables import care_task
from crm_campaign.dispatch.model import DispatchState
from crm_campaign.dispatch.tables import dispatch
from crm_campaign.offers.tables import offer
from crm_campaign.propensity.tables import customer_feature
from crmkit.db import UnitOfWork

# Dispatches that are, or will be, contacts: they count against caps and compete in arbitration.
PLANNED_OR_MADE = (int(DispatchState.QUEUED), int(DispatchState.SENDING), int(DispatchState.SENT),
                   int(DispatchState.DELIVERED))
PENDING = (int(DispatchState.QUEUED), int(DispatchState.SENDING))
# How long a sent offer of another campaign keeps the customer from being arbitrated again.
ARBITRATION_WINDOW = timedelta(days=7)


def segment_id(name: str) -> str:
    return name.removeprefix("segments/")


class AudienceInputs:
    async def customer_features(self, uow: UnitOfWork, plan: Plan) -> dict[str, dict[str, float | str | bool]]:
        """The modelling features campaign holds of the campaign's segment members (propensity)."""
        rows = (await uow.execute(
            sa.select(customer_feature.c.customer_id, customer_feature.c.features)
            .join(segment_member, segment_member.c.customer_id == customer_feature.c.customer_id)
            .where(segment_member.c.segment_id == segment_id(plan.segment)))).all()
        return {row.customer_id: row.features for row in rows}

    async def candidates(self, uow: UnitOfWork, plan: Plan, *, now: datetime, cap_horizon: timedelta
                         ) -> list[Candidate]:
        members = segment_member.alias("member")
        complaint = sa.exists().where(open_complaint.c.customer_id == members.c.customer_id)
        rows = (await uow.execute(
            sa.select(members.c.customer_id, customer_contact.c.do_not_contact, customer_contact.c.consented_channels,
                      customer_contact.c.reachable_channels, customer_contact.c.preferred_channel,
                      customer_contact.c.time_zone, customer_contact.c.held_products, complaint.label("complaint"))
            .select_from(members.outerjoin(customer_contact,
                                           customer_contact.c.customer_id == members.c.customer_id))
            .where(members.c.segment_id == segment_id(plan.segment))
            .order_by(members.c.customer_id))).all()
        in_audience = sa.select(segment_member.c.customer_id).where(
            segment_member.c.segment_id == segment_id(plan.segment)).scalar_subquery()

        extra_segments: dict[str, set[str]] = defaultdict(set)
        wanted = sorted({segment_id(o.eligibility_segment) for o in plan.offers if o.eligibility_segment})
        if wanted:
            for membership in (await uow.execute(
                    sa.select(segment_member.c.customer_id, segment_member.c.segment_id)
                    .where(segment_member.c.segment_id.in_(wanted),
                           segment_member.c.customer_id.in_(in_audience)))).all():
                extra_segments[membership.customer_id].add(f"segments/{membership.segment_id}")

        contacts: dict[str, list[PastContact]] = defaultdict(list)
        contact_at = sa.func.coalesce(dispatch.c.sent_at, dispatch.c.created_at)
        for made in (await uow.execute(
                sa.select(dispatch.c.customer_id, dispatch.c.campaign_id, dispatch.c.channel, contact_at.label("at"))
                .where(dispatch.c.customer_id.in_(in_audience), dispatch.c.state.in_(PLANNED_OR_MADE),
                       contact_at > now - cap_horizon))).all():
            contacts[made.customer_id].append(PastContact(made.campaign_id, made.channel, made.at))
        # A care task completed with a contact counts too (its offer's campaign, if it carried one).
        for done in (await uow.execute(
                sa.select(care_task.c.customer_id, care_task.c.offer_campaign_id, care_task.c.contact_channel,
                          care_task.c.closed_at)
                .where(care_task.c.customer_id.in_(in_audience), care_task.c.state == int(CareTaskState.DONE),
                       care_task.c.contact_channel != 0, care_task.c.closed_at > now - cap_horizon))).all():
            contacts[done.customer_id].append(PastContact(done.offer_campaign_id, done.contact_channel,
                                                          done.closed_at))

        rivals: dict[str, list[Rival]] = defaultdict(list)
        # What the rival's offer scored when it was planned; before scores were kept, priority x value.
        score = sa.func.coalesce(dispatch.c.arbitration_score, offer.c.priority * offer.c.expected_value_amount)
        for rival in (await uow.execute(
                sa.select(dispatch.c.customer_id, dispatch.c.campaign_id, dispatch.c.offer_id, dispatch.c.dispatch_id,
                          dispatch.c.state, score.label("score"))
                .join(campaign, campaign.c.campaign_id == dispatch.c.campaign_id)
                .join(offer, sa.and_(offer.c.campaign_id == dispatch.c.campaign_id,
                                     offer.c.offer_id == dispatch.c.offer_id))
                .where(dispatch.c.customer_id.in_(in_audience), dispatch.c.campaign_id != plan.campaign_id,
                       campaign.c.state == int(CampaignState.RUNNING),
                       sa.or_(dispatch.c.state.in_(PENDING),
                              sa.and_(dispatch.c.state.in_(PLANNED_OR_MADE),
                                      dispatch.c.sent_at > now - ARBITRATION_WINDOW))))).all():
            rivals[rival.customer_id].append(Rival(rival.campaign_id, rival.offer_id, float(rival.score),
                                                   sent=rival.state not in PENDING, dispatch_id=rival.dispatch_id))

        frozen = _Interned()
        return [Candidate(
            customer_id=row.customer_id, segments=frozen(extra_segments.get(row.customer_id)),
            held_products=frozen(row.held_products), do_not_contact=bool(row.do_not_contact),
            open_complaint=bool(row.complaint), consented_channels=frozen(row.consented_channels),
            reachable_channels=frozen(row.reachable_channels),
            preferred_channel=row.preferred_channel or 0, time_zone=row.time_zone or "",
            # The risk service is not asked yet: every offer that needs a check is unknown.
            unsuitable_offers=None,
            contacts=tuple(contacts.get(row.customer_id, ())), rivals=tuple(rivals.get(row.customer_id, ())),
        ) for row in rows]


class _Interned:
    """One frozenset per distinct list of values: a million candidates share a few dozen sets of
    channels, products and segments, and building a set per candidate was most of the load."""

    def __init__(self) -> None:
        self._sets: dict[tuple[Any, ...], frozenset[Any]] = {(): frozenset()}

    def __call__(self, values: Iterable[Any] | None) -> frozenset[Any]:
        key = tuple(values) if values else ()
        found = self._sets.get(key)
        if found is None:
            found = self._sets[key] = frozenset(key)
        return found
