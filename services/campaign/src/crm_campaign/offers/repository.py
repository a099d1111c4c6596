"""All SQL about offers. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.campaigns.model import Interval, Money
from crm_campaign.offers.model import ChannelContent, Offer, OfferEligibility
from crm_campaign.offers.tables import offer as t
from crmkit.db import UnitOfWork

_PLAIN_FIELDS = ("display_name", "description", "product_code", "product_risk_level", "priority",
                 "conversion_points", "offer_type")


def _to_row(offer: Offer) -> dict[str, Any]:
    assert offer.expected_value is not None, "validated before storing"
    row = {field: getattr(offer, field) for field in _PLAIN_FIELDS}
    row.update(
        expected_value_currency=offer.expected_value.currency_code,
        expected_value_amount=offer.expected_value.amount,
        eligibility_segment=offer.eligibility.segment,
        excluded_product_codes=list(offer.eligibility.excluded_product_codes),
        channels=list(offer.channels),
        contents=[{"channel": c.channel, "template_id": c.template_id, "headline": c.headline}
                  for c in offer.contents],
        valid_start_at=offer.valid_period.start_time,
        valid_end_at=offer.valid_period.end_time,
    )
    return row


def _from_row(row: Any) -> Offer:
    return Offer(
        campaign_id=row.campaign_id,
        offer_id=row.offer_id,
        **{field: getattr(row, field) for field in _PLAIN_FIELDS},
        expected_value=Money(row.expected_value_currency, Decimal(row.expected_value_amount)),
        eligibility=OfferEligibility(row.eligibility_segment, tuple(row.excluded_product_codes)),
        channels=tuple(row.channels),
        contents=tuple(ChannelContent(**c) for c in row.contents),
        valid_period=Interval(row.valid_start_at, row.valid_end_at),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _key(campaign_id: str, offer_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(t.c.campaign_id == campaign_id, t.c.offer_id == offer_id)


class OfferRepository:
    async def insert(self, uow: UnitOfWork, offer: Offer) -> Offer | None:
        """Insert; None when the offer id is taken in its campaign."""
        statement = (
            pg.insert(t).values(campaign_id=offer.campaign_id, offer_id=offer.offer_id, **_to_row(offer))
            .on_conflict_do_nothing(index_elements=[t.c.campaign_id, t.c.offer_id]).returning(t)
        )
        row = (await uow.execute(statement)).first()
        return _from_row(row) if row is not None else None

    async def get(self, uow: UnitOfWork, campaign_id: str, offer_id: str, *,
                  for_update: bool = False) -> Offer | None:
        query = sa.select(t).where(_key(campaign_id, offer_id))
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        return _from_row(row) if row is not None else None

    async def update(self, uow: UnitOfWork, offer: Offer) -> Offer:
        statement = (
            sa.update(t).where(_key(offer.campaign_id, offer.offer_id))
            .values(**_to_row(offer), version=t.c.version + 1, updated_at=sa.func.now()).returning(t)
        )
        return _from_row((await uow.execute(statement)).one())

    async def delete(self, uow: UnitOfWork, campaign_id: str, offer_id: str) -> None:
        await uow.execute(sa.delete(t).where(_key(campaign_id, offer_id)))

    async def count(self, uow: UnitOfWork, campaign_id: str) -> int:
        return int(await uow.scalar(sa.select(sa.func.count()).where(t.c.campaign_id == campaign_id)) or 0)

    async def page(self, uow: UnitOfWork, campaign_id: str, *, after: str | None = None,
                   limit: int | None = None) -> list[Offer]:
        """The campaign's offers in offer-id order, after `after`."""
        query = sa.select(t).where(t.c.campaign_id == campaign_id).order_by(t.c.offer_id).limit(limit)
        if after is not None:
            query = query.where(t.c.offer_id > after)
        return [_from_row(row) for row in (await uow.execute(query)).all()]

    async def of_campaigns(self, uow: UnitOfWork, campaign_ids: Sequence[str]) -> list[Offer]:
        """The offers of several campaigns in one query, in campaign and offer-id order."""
        if not campaign_ids:
            return []
        query = sa.select(t).where(t.c.campaign_id.in_(campaign_ids)).order_by(t.c.campaign_id, t.c.offer_id)
        return [_from_row(row) for row in (await uow.execute(query)).all()]
