"""The SQL of campaign results: customers per (offer, channel, segment) cell with what they did."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from crm_campaign.audience.model import AudienceGroup
from crm_campaign.audience.tables import audience_member as m
from crm_campaign.dispatch.tables import dispatch as d
from crm_campaign.engagement.model import ResponseType
from crm_campaign.engagement.repository import CONTACTED
from crm_campaign.engagement.tables import conversion as c
from crm_campaign.engagement.tables import offer_response as r
from crm_campaign.results.rules import Cell
from crmkit.db import UnitOfWork

TARGET, CONTROL = int(AudienceGroup.TARGET), int(AudienceGroup.CONTROL)


class ResultsRepository:
    async def cells(self, uow: UnitOfWork, campaign_id: str) -> list[Cell]:
        contacted = sa.exists().where(d.c.campaign_id == m.c.campaign_id, d.c.customer_id == m.c.customer_id,
                                      d.c.state.in_(CONTACTED))
        responded = sa.exists().where(r.c.campaign_id == m.c.campaign_id, r.c.customer_id == m.c.customer_id,
                                      r.c.type != int(ResponseType.SHOWN))
        converted = (sa.select(sa.func.count().label("n"), sa.func.sum(c.c.value).label("value"))
                     .where(c.c.campaign_id == m.c.campaign_id, c.c.customer_id == m.c.customer_id)
                     .lateral("converted"))
        is_target, is_control = m.c.group == TARGET, m.c.group == CONTROL
        query = (sa.select(
            m.c.offer_id, m.c.channel, m.c.segment,
            sa.func.count().filter(is_target).label("target"),
            sa.func.count().filter(is_control).label("control"),
            sa.func.count().filter(sa.and_(is_target, contacted)).label("contacts"),
            sa.func.count().filter(sa.and_(is_target, contacted, responded)).label("responses"),
            sa.func.count().filter(sa.and_(is_target, converted.c.n > 0)).label("target_conversions"),
            sa.func.count().filter(sa.and_(is_control, converted.c.n > 0)).label("control_conversions"),
            sa.func.coalesce(sa.func.sum(converted.c.value).filter(is_target), 0).label("revenue"))
            .select_from(m.join(converted, sa.true()))
            .where(m.c.campaign_id == campaign_id, m.c.group.in_([TARGET, CONTROL]))
            .group_by(m.c.offer_id, m.c.channel, m.c.segment))
        return [Cell(offer_id=row.offer_id, channel=row.channel, segment=row.segment, target=row.target,
                     control=row.control, contacts=row.contacts, responses=row.responses,
                     target_conversions=row.target_conversions, control_conversions=row.control_conversions,
                     revenue=Decimal(row.revenue)) for row in (await uow.execute(query)).all()]
