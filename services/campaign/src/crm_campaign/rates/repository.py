"""The one aggregate behind the observed response rates: contacts and acceptances per offer and
channel, over every campaign's dispatches (rates.rules says what counts)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_campaign.dispatch.tables import dispatch as d
from crm_campaign.engagement.model import ResponseType
from crm_campaign.engagement.repository import CONTACTED
from crm_campaign.engagement.tables import conversion as c
from crm_campaign.engagement.tables import offer_response as r
from crm_campaign.offers.tables import offer as o
from crm_campaign.rates.rules import Tally
from crmkit.db import UnitOfWork


class ResponseRateRepository:
    async def tallies(self, uow: UnitOfWork) -> list[Tally]:
        """One row per (campaign, offer, channel) that contacted anyone."""
        accepted = sa.or_(
            sa.exists().where(r.c.campaign_id == d.c.campaign_id, r.c.customer_id == d.c.customer_id,
                              r.c.offer_id == d.c.offer_id, r.c.type == int(ResponseType.ACCEPTED)),
            sa.exists().where(c.c.campaign_id == d.c.campaign_id, c.c.customer_id == d.c.customer_id,
                              c.c.offer_id == d.c.offer_id, c.c.control_group.is_(False)))
        query = (sa.select(d.c.campaign_id, d.c.offer_id, o.c.offer_type, d.c.channel,
                           sa.func.count().label("contacts"), sa.func.count().filter(accepted).label("accepted"))
                 .select_from(d.join(o, sa.and_(o.c.campaign_id == d.c.campaign_id, o.c.offer_id == d.c.offer_id)))
                 .where(d.c.state.in_(CONTACTED))
                 .group_by(d.c.campaign_id, d.c.offer_id, o.c.offer_type, d.c.channel))
        return [Tally(campaign_id=row.campaign_id, offer_id=row.offer_id, offer_type=row.offer_type,
                      channel=row.channel, contacts=row.contacts, accepted=row.accepted)
                for row in (await uow.execute(query)).all()]
