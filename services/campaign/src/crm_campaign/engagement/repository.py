"""All SQL about responses, conversions and the contacts conversions are attributed to. Never commits."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.audience.model import AudienceGroup
from crm_campaign.audience.tables import audience_member
from crm_campaign.campaigns.model import Money
from crm_campaign.campaigns.tables import campaign
from crm_campaign.dispatch.model import DispatchState, SuppressionReason
from crm_campaign.dispatch.tables import dispatch
from crm_campaign.engagement.model import DEFAULT_ATTRIBUTION_WINDOW, Contact, Conversion, OfferResponse
from crm_campaign.engagement.tables import conversion as c
from crm_campaign.engagement.tables import offer_response as r
from crm_campaign.offers.tables import offer
from crmkit.db import UnitOfWork

CONTACTED = (int(DispatchState.SENT), int(DispatchState.DELIVERED))


def _response(row: Any) -> OfferResponse:
    return OfferResponse(campaign_id=row.campaign_id, response_id=row.response_id, customer_id=row.customer_id,
                         offer_id=row.offer_id, channel=row.channel, type=row.type, response_time=row.response_time,
                         dispatch_id=row.dispatch_id, decision_id=row.decision_id, recorder=row.recorder,
                         created_at=row.created_at)


def _conversion(row: Any) -> Conversion:
    return Conversion(
        customer_id=row.customer_id, source_reference=row.source_reference, conversion_time=row.conversion_time,
        campaign_id=row.campaign_id, offer_id=row.offer_id, product_code=row.product_code,
        amount=Money(row.amount_currency, Decimal(row.amount)) if row.amount_currency else None,
        value=Money(row.value_currency, Decimal(row.value)), conversion_id=row.conversion_id,
        control_group=row.control_group, dispatch_id=row.dispatch_id, points_awarded=row.points_awarded,
        created_at=row.created_at)


class EngagementRepository:
    async def insert_response(self, uow: UnitOfWork, response: OfferResponse, now: datetime) -> OfferResponse:
        row = (await uow.execute(sa.insert(r).values(
            response_id=response.response_id, campaign_id=response.campaign_id, customer_id=response.customer_id,
            offer_id=response.offer_id, dispatch_id=response.dispatch_id, decision_id=response.decision_id,
            channel=response.channel, type=response.type, response_time=response.response_time,
            recorder=response.recorder, created_at=now).returning(*r.c))).one()
        return _response(row)

    async def get_response(self, uow: UnitOfWork, campaign_id: str, response_id: str) -> OfferResponse | None:
        row = (await uow.execute(sa.select(r).where(r.c.campaign_id == campaign_id,
                                                    r.c.response_id == response_id))).first()
        return _response(row) if row is not None else None

    async def stop_channel(self, uow: UnitOfWork, customer_id: str, channel: int, now: datetime) -> int:
        """The customer opted out of a channel: their dispatches still queued on it, in every
        campaign, are suppressed."""
        statement = (sa.update(dispatch)
                     .where(dispatch.c.customer_id == customer_id, dispatch.c.channel == channel,
                            dispatch.c.state == int(DispatchState.QUEUED))
                     .values(state=int(DispatchState.SUPPRESSED), updated_at=now,
                             suppression_reason=int(SuppressionReason.NO_CONSENT),
                             last_error={"reason": "OPTED_OUT", "message": "the customer opted out of this channel",
                                         "metadata": {}}))
        return (await uow.execute(statement)).rowcount

    async def insert_conversion(self, uow: UnitOfWork, conversion: Conversion, now: datetime) -> Conversion | None:
        """The conversion, or None when its source reference is recorded already."""
        value = conversion.value
        assert value is not None
        statement = (pg.insert(c).values(
            conversion_id=conversion.conversion_id, campaign_id=conversion.campaign_id,
            customer_id=conversion.customer_id, offer_id=conversion.offer_id, product_code=conversion.product_code,
            amount_currency=conversion.amount.currency_code if conversion.amount else None,
            amount=conversion.amount.amount if conversion.amount else None,
            value_currency=value.currency_code, value=value.amount, conversion_time=conversion.conversion_time,
            control_group=conversion.control_group, dispatch_id=conversion.dispatch_id,
            source_reference=conversion.source_reference, points_awarded=conversion.points_awarded, created_at=now)
            .on_conflict_do_nothing(index_elements=["source_reference"]).returning(*c.c))
        row = (await uow.execute(statement)).first()
        return _conversion(row) if row is not None else None

    async def conversion_by_reference(self, uow: UnitOfWork, source_reference: str) -> Conversion | None:
        row = (await uow.execute(sa.select(c).where(c.c.source_reference == source_reference))).first()
        return _conversion(row) if row is not None else None

    async def conversion_by_id(self, uow: UnitOfWork, conversion_id: str) -> Conversion | None:
        row = (await uow.execute(sa.select(c).where(c.c.conversion_id == conversion_id))).first()
        return _conversion(row) if row is not None else None

    async def contacts(self, uow: UnitOfWork, customer_id: str) -> list[Contact]:
        """Everything a purchase by the customer could be attributed to: their sent dispatches and
        their control-group assignments, with each campaign's window and the offer's product."""
        window = sa.func.coalesce(campaign.c.attribution_window_seconds,
                                  int(DEFAULT_ATTRIBUTION_WINDOW.total_seconds()))
        common = (offer.c.product_code, offer.c.conversion_points, offer.c.expected_value_currency,
                  offer.c.expected_value_amount, window.label("window_seconds"))
        sent = (sa.select(dispatch.c.campaign_id, dispatch.c.offer_id, dispatch.c.dispatch_id,
                          sa.literal(False).label("control_group"), dispatch.c.sent_at.label("contact_at"), *common)
                .join(campaign, campaign.c.campaign_id == dispatch.c.campaign_id)
                .join(offer, sa.and_(offer.c.campaign_id == dispatch.c.campaign_id,
                                     offer.c.offer_id == dispatch.c.offer_id))
                .where(dispatch.c.customer_id == customer_id, dispatch.c.state.in_(CONTACTED)))
        held_out = (sa.select(audience_member.c.campaign_id, audience_member.c.offer_id,
                              sa.literal("").label("dispatch_id"), sa.literal(True).label("control_group"),
                              audience_member.c.created_at.label("contact_at"), *common)
                    .join(campaign, campaign.c.campaign_id == audience_member.c.campaign_id)
                    .join(offer, sa.and_(offer.c.campaign_id == audience_member.c.campaign_id,
                                         offer.c.offer_id == audience_member.c.offer_id))
                    .where(audience_member.c.customer_id == customer_id,
                           audience_member.c.group == int(AudienceGroup.CONTROL)))
        rows = (await uow.execute(sa.union_all(sent, held_out))).all()
        return [Contact(
            campaign_id=row.campaign_id, offer_id=row.offer_id, product_code=row.product_code,
            control_group=row.control_group, contact_at=row.contact_at, window=timedelta(seconds=row.window_seconds),
            dispatch_id=row.dispatch_id, conversion_points=row.conversion_points,
            expected_value=(Money(row.expected_value_currency, Decimal(row.expected_value_amount))
                            if row.expected_value_currency else None),
        ) for row in rows]
