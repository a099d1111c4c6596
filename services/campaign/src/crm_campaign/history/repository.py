"""The contact-history read: what campaign recorded about one customer (dispatches, responses,
conversions), joined to campaign and offer names. Reads only; never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from crm_campaign.audience.read_models import customer_contact
from crm_campaign.book.tables import customer_manager
from crm_campaign.campaigns.model import Channel
from crm_campaign.campaigns.tables import campaign
from crm_campaign.care.tables import care_task
from crm_campaign.dispatch.model import DispatchState
from crm_campaign.dispatch.tables import dispatch as d
from crm_campaign.engagement.tables import conversion as c
from crm_campaign.engagement.tables import offer_response as r
from crm_campaign.history.model import Contact, HistoryFilter, Outcome
from crm_campaign.history.rules import CONTACT_STATES
from crm_campaign.offers.tables import offer
from crmkit.db import UnitOfWork

RM_VISIT = int(Channel.RM_VISIT)
# An inbound contact's responses share a decision id; a response without one is a contact alone.
_GROUP_REF = sa.func.coalesce(sa.func.nullif(r.c.decision_id, ""), r.c.response_id)


def _contacts(customer_id: str) -> sa.Subquery:
    """Every contact of the customer: sent or failed dispatches, and inbound response groups."""
    # Who presented an RM-visit dispatch: the assignee of the care task the dispatch made.
    visitor = (sa.select(care_task.c.assignee)
               .where(care_task.c.source == sa.func.concat("campaigns/", d.c.campaign_id, "/dispatches/",
                                                          d.c.dispatch_id),
                      sa.not_(care_task.c.assignee.startswith("branch:")))
               .order_by(care_task.c.created_at).limit(1).scalar_subquery())
    sent = (sa.select(
        sa.func.concat("d:", d.c.dispatch_id).label("entry_key"), d.c.campaign_id, d.c.offer_id, d.c.channel,
        sa.case((d.c.state == int(DispatchState.FAILED), d.c.updated_at), else_=d.c.sent_at).label("contact_at"),
        d.c.dispatch_id, d.c.state.label("dispatch_state"), sa.literal("").label("group_ref"),
        sa.case((d.c.channel == RM_VISIT, sa.func.coalesce(visitor, "")), else_="").label("relationship_manager_id"))
        .where(d.c.customer_id == customer_id, d.c.state.in_(CONTACT_STATES)))
    inbound = (sa.select(
        sa.func.concat("r:", sa.func.min(r.c.response_id)).label("entry_key"), r.c.campaign_id, r.c.offer_id,
        r.c.channel, sa.func.min(r.c.response_time).label("contact_at"), sa.literal("").label("dispatch_id"),
        sa.literal(0).label("dispatch_state"), _GROUP_REF.label("group_ref"),
        sa.case((r.c.channel == RM_VISIT, sa.func.min(r.c.recorder)), else_="").label("relationship_manager_id"))
        .where(r.c.customer_id == customer_id, r.c.dispatch_id == "")
        .group_by(r.c.campaign_id, r.c.offer_id, r.c.channel, _GROUP_REF))
    return sa.union_all(sent, inbound).subquery("contact")


def _contact(row: Any) -> Contact:
    return Contact(
        entry_key=row.entry_key, campaign_id=row.campaign_id, offer_id=row.offer_id, channel=row.channel,
        contact_at=row.contact_at, campaign_display_name=row.campaign_display_name or "",
        offer_display_name=row.offer_display_name or "", product_code=row.product_code or "",
        dispatch_id=row.dispatch_id, dispatch_state=row.dispatch_state, group_ref=row.group_ref,
        relationship_manager_id=row.relationship_manager_id)


class HistoryRepository:
    async def known(self, uow: UnitOfWork, customer_id: str) -> bool:
        """Whether campaign knows the customer: from profile's feeds, or by anything it recorded."""
        sources = (sa.select(customer_manager.c.customer_id).where(customer_manager.c.customer_id == customer_id),
                   sa.select(customer_contact.c.customer_id).where(customer_contact.c.customer_id == customer_id),
                   sa.select(d.c.customer_id).where(d.c.customer_id == customer_id),
                   sa.select(r.c.customer_id).where(r.c.customer_id == customer_id))
        return bool(await uow.scalar(sa.select(sa.or_(*(sa.exists(s) for s in sources)))))

    async def page(self, uow: UnitOfWork, query: HistoryFilter, *, after: tuple[datetime, str] | None,
                   limit: int) -> list[Contact]:
        """The customer's contacts matching `query`, newest first, after the (contact_at, key) key."""
        contact = _contacts(query.customer_id)
        select = (sa.select(contact, campaign.c.display_name.label("campaign_display_name"),
                            offer.c.display_name.label("offer_display_name"), offer.c.product_code)
                  .outerjoin(campaign, campaign.c.campaign_id == contact.c.campaign_id)
                  .outerjoin(offer, sa.and_(offer.c.campaign_id == contact.c.campaign_id,
                                            offer.c.offer_id == contact.c.offer_id)))
        if query.channel:
            select = select.where(contact.c.channel == query.channel)
        if query.campaign_id:
            select = select.where(contact.c.campaign_id == query.campaign_id)
        if query.contact_from is not None:
            select = select.where(contact.c.contact_at >= query.contact_from)
        if query.contact_until is not None:
            select = select.where(contact.c.contact_at < query.contact_until)
        if after is not None:
            select = select.where(sa.tuple_(contact.c.contact_at, contact.c.entry_key) < sa.tuple_(*after))
        select = select.order_by(contact.c.contact_at.desc(), contact.c.entry_key.desc()).limit(limit)
        return [_contact(row) for row in (await uow.execute(select)).all()]

    async def outcomes(self, uow: UnitOfWork, customer_id: str, contacts: Sequence[Contact]) -> list[Outcome]:
        """The customer's responses and (target-group) conversions in the campaigns of `contacts`."""
        campaign_ids = sorted({contact.campaign_id for contact in contacts})
        if not campaign_ids:
            return []
        responses = (sa.select(r.c.campaign_id, r.c.dispatch_id, _GROUP_REF.label("group_ref"), r.c.offer_id,
                               r.c.channel, r.c.type, r.c.response_time)
                     .where(r.c.customer_id == customer_id, r.c.campaign_id.in_(campaign_ids)))
        conversions = (sa.select(c.c.campaign_id, c.c.dispatch_id, c.c.offer_id, c.c.conversion_time)
                       .where(c.c.customer_id == customer_id, c.c.campaign_id.in_(campaign_ids),
                              c.c.dispatch_id != "", sa.not_(c.c.control_group)))
        found = [Outcome(campaign_id=row.campaign_id, dispatch_id=row.dispatch_id, group_ref=row.group_ref,
                         offer_id=row.offer_id, channel=row.channel, response_type=row.type, at=row.response_time)
                 for row in (await uow.execute(responses)).all()]
        found += [Outcome(campaign_id=row.campaign_id, dispatch_id=row.dispatch_id, group_ref="",
                          offer_id=row.offer_id, channel=0, response_type=0, at=row.conversion_time, conversion=True)
                  for row in (await uow.execute(conversions)).all()]
        return found
