"""All SQL about audience members. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.audience.model import AudienceGroup, Member
from crm_campaign.audience.tables import audience_member as t
from crm_campaign.dispatch.model import SuppressionReason
from crmkit.db import UnitOfWork


def _from_row(row: Any) -> Member:
    return Member(campaign_id=row.campaign_id, customer_id=row.customer_id, group=AudienceGroup(row.group),
                  offer_id=row.offer_id, channel=row.channel, segment=row.segment,
                  suppression_reason=SuppressionReason(row.suppression_reason), created_at=row.created_at)


class AudienceRepository:
    async def insert(self, uow: UnitOfWork, members: Sequence[Member], now: datetime) -> list[Member]:
        """Members not in their campaign's audience yet; the ones already there stay as they were."""
        if not members:
            return []
        rows = [{"campaign_id": m.campaign_id, "customer_id": m.customer_id, "group": int(m.group),
                 "offer_id": m.offer_id, "channel": m.channel, "segment": m.segment,
                 "suppression_reason": int(m.suppression_reason), "created_at": now} for m in members]
        statement = (pg.insert(t).on_conflict_do_nothing(index_elements=["campaign_id", "customer_id"])
                     .returning(*t.c))
        return [_from_row(row) for row in (await uow.execute(statement, rows)).all()]

    async def get(self, uow: UnitOfWork, campaign_id: str, customer_id: str) -> Member | None:
        row = (await uow.execute(sa.select(t).where(t.c.campaign_id == campaign_id,
                                                    t.c.customer_id == customer_id))).first()
        return _from_row(row) if row is not None else None

    async def of_customer(self, uow: UnitOfWork, customer_id: str, groups: Sequence[AudienceGroup]) -> list[Member]:
        query = sa.select(t).where(t.c.customer_id == customer_id, t.c.group.in_([int(g) for g in groups]))
        return [_from_row(row) for row in (await uow.execute(query)).all()]
