"""All SQL about audience members. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

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
        # One statement of column arrays: a build adds a row per candidate (a million for a large
        # segment), and binding them row by row (executemany) cost more than the insert itself.
        statement = sa.text(
            'INSERT INTO audience_member (campaign_id, customer_id, "group", offer_id, channel, segment, '
            "suppression_reason, created_at) "
            "SELECT data.*, :now FROM unnest(CAST(:campaigns AS text[]), CAST(:customers AS text[]), "
            "CAST(:groups AS smallint[]), CAST(:offers AS text[]), CAST(:channels AS smallint[]), "
            "CAST(:segments AS text[]), CAST(:reasons AS smallint[])) "
            'AS data(campaign_id, customer_id, "group", offer_id, channel, segment, suppression_reason) '
            "ON CONFLICT (campaign_id, customer_id) DO NOTHING RETURNING audience_member.*"
        ).bindparams(
            now=now, campaigns=[m.campaign_id for m in members], customers=[m.customer_id for m in members],
            groups=[int(m.group) for m in members], offers=[m.offer_id for m in members],
            channels=[m.channel for m in members], segments=[m.segment for m in members],
            reasons=[int(m.suppression_reason) for m in members])
        return [_from_row(row) for row in (await uow.execute(statement)).all()]

    async def get(self, uow: UnitOfWork, campaign_id: str, customer_id: str) -> Member | None:
        row = (await uow.execute(sa.select(t).where(t.c.campaign_id == campaign_id,
                                                    t.c.customer_id == customer_id))).first()
        return _from_row(row) if row is not None else None

    async def of_customer(self, uow: UnitOfWork, customer_id: str, groups: Sequence[AudienceGroup]) -> list[Member]:
        query = sa.select(t).where(t.c.customer_id == customer_id, t.c.group.in_([int(g) for g in groups]))
        return [_from_row(row) for row in (await uow.execute(query)).all()]
