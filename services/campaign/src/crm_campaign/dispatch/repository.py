"""All SQL about dispatches. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_campaign.campaigns.model import CampaignState
from crm_campaign.campaigns.tables import campaign
from crm_campaign.dispatch.model import (
    Dispatch,
    DispatchError,
    DispatchState,
    Planned,
    SuppressionReason,
    dispatch_id,
)
from crm_campaign.dispatch.tables import dispatch as t
from crmkit.db import UnitOfWork


def _error_to_json(error: DispatchError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"reason": error.reason, "message": error.message, "metadata": dict(error.metadata)}


def _from_row(row: Any) -> Dispatch:
    error = row.last_error
    return Dispatch(
        campaign_id=row.campaign_id, dispatch_id=row.dispatch_id, customer_id=row.customer_id,
        offer_id=row.offer_id, channel=row.channel, state=DispatchState(row.state),
        channel_reason=row.channel_reason, template_id=row.template_id, headline=row.headline,
        attempt_count=row.attempt_count, provider_message_id=row.provider_message_id,
        last_error=(DispatchError(error["reason"], error["message"], error.get("metadata") or {})
                    if error else None),
        suppression_reason=SuppressionReason(row.suppression_reason), not_before_at=row.not_before_at,
        propensity_model=row.propensity_model, created_at=row.created_at, sent_at=row.sent_at,
        delivered_at=row.delivered_at,
    )


class DispatchRepository:
    async def insert_planned(self, uow: UnitOfWork, campaign_id: str, planned: Sequence[Planned],
                             now: datetime) -> list[Dispatch]:
        """Queue targets and record suppressed customers; a (campaign, customer, channel) already
        there is left as it is. Returns the rows inserted."""
        if not planned:
            return []
        rows = [{
            "dispatch_id": dispatch_id(campaign_id, p.customer_id, p.channel), "campaign_id": campaign_id,
            "customer_id": p.customer_id, "offer_id": p.offer_id, "channel": p.channel,
            "channel_reason": p.channel_reason, "template_id": p.template_id, "headline": p.headline,
            "state": int(DispatchState.SUPPRESSED if p.suppression_reason else DispatchState.QUEUED),
            "suppression_reason": int(p.suppression_reason), "last_error": _error_to_json(p.error),
            "not_before_at": p.not_before_at, "created_at": now, "updated_at": now,
            "arbitration_score": p.arbitration_score, "propensity_model": p.propensity_model,
        } for p in planned]
        statement = (pg.insert(t).on_conflict_do_nothing(index_elements=["campaign_id", "customer_id", "channel"])
                     .returning(*t.c))
        return [_from_row(row) for row in (await uow.execute(statement, rows)).all()]

    async def claim(self, uow: UnitOfWork, *, now: datetime, lease: timedelta, limit: int) -> list[Dispatch]:
        """Record the intent to send: up to `limit` dispatches of running campaigns that are due
        (QUEUED, or SENDING whose claim lapsed: a dispatcher died after claiming) become SENDING,
        with one more attempt and a claim until `now + lease`. Rows another dispatcher holds are skipped."""
        due = (sa.select(t.c.dispatch_id)
               .join(campaign, campaign.c.campaign_id == t.c.campaign_id)
               .where(campaign.c.state == int(CampaignState.RUNNING))
               .where(sa.or_(
                   sa.and_(t.c.state == int(DispatchState.QUEUED),
                           sa.or_(t.c.not_before_at.is_(None), t.c.not_before_at <= now)),
                   sa.and_(t.c.state == int(DispatchState.SENDING), t.c.claimed_until < now)))
               .order_by(t.c.created_at)
               .limit(limit)
               .with_for_update(of=t, skip_locked=True)
               .scalar_subquery())
        statement = (sa.update(t).where(t.c.dispatch_id.in_(due))
                     .values(state=int(DispatchState.SENDING), attempt_count=t.c.attempt_count + 1,
                             claimed_until=now + lease, updated_at=now)
                     .returning(*t.c))
        return [_from_row(row) for row in (await uow.execute(statement)).all()]

    async def mark_sent(self, uow: UnitOfWork, sent: Sequence[tuple[str, str]], now: datetime) -> list[Dispatch]:
        """(dispatch_id, provider_message_id) pairs still SENDING become SENT (one statement: two arrays)."""
        if not sent:
            return []
        statement = sa.text(
            "UPDATE dispatch SET state = :sent, provider_message_id = data.provider_message_id, sent_at = :now, "
            "updated_at = :now, claimed_until = NULL, last_error = NULL "
            "FROM unnest(CAST(:ids AS text[]), CAST(:provider_ids AS text[])) "
            "AS data(dispatch_id, provider_message_id) "
            "WHERE dispatch.dispatch_id = data.dispatch_id AND dispatch.state = :sending RETURNING dispatch.*"
        ).bindparams(sent=int(DispatchState.SENT), sending=int(DispatchState.SENDING), now=now,
                     ids=[pair[0] for pair in sent], provider_ids=[pair[1] for pair in sent])
        return [_from_row(row) for row in (await uow.execute(statement)).all()]

    async def mark_failed(self, uow: UnitOfWork, dispatch_id_: str, error: DispatchError, *, retry_at: datetime | None,
                          now: datetime) -> Dispatch | None:
        """A failed attempt: back to QUEUED until `retry_at`, or FAILED for good when it is None."""
        state = DispatchState.QUEUED if retry_at is not None else DispatchState.FAILED
        statement = (sa.update(t)
                     .where(t.c.dispatch_id == dispatch_id_, t.c.state == int(DispatchState.SENDING))
                     .values(state=int(state), last_error=_error_to_json(error), not_before_at=retry_at,
                             claimed_until=None, updated_at=now)
                     .returning(*t.c))
        row = (await uow.execute(statement)).first()
        return _from_row(row) if row is not None else None

    async def displace(self, uow: UnitOfWork, dispatch_ids: Sequence[str], winner_offer: str, now: datetime
                       ) -> list[Dispatch]:
        """Queued dispatches of other campaigns that lost arbitration to `winner_offer`: suppressed,
        naming it, in one statement (an audience build displaces tens of thousands). Returns the
        ones that were still queued."""
        if not dispatch_ids:
            return []
        error = DispatchError("ARBITRATION_LOST", "a running campaign has a better offer for this customer",
                              {"winner_offer": winner_offer})
        # One array parameter, however many ids (an IN list would hit the protocol's parameter limit).
        ids = sa.bindparam("displaced_ids", list(dispatch_ids), type_=pg.ARRAY(sa.Text))
        statement = (sa.update(t)
                     .where(t.c.dispatch_id == sa.any_(ids), t.c.state == int(DispatchState.QUEUED))
                     .values(state=int(DispatchState.SUPPRESSED), updated_at=now, last_error=_error_to_json(error),
                             suppression_reason=int(SuppressionReason.ARBITRATION_LOST))
                     .returning(*t.c))
        return [_from_row(row) for row in (await uow.execute(statement)).all()]

    async def cancel_queued(self, uow: UnitOfWork, campaign_id: str, now: datetime) -> int:
        statement = (sa.update(t)
                     .where(t.c.campaign_id == campaign_id, t.c.state == int(DispatchState.QUEUED))
                     .values(state=int(DispatchState.CANCELLED), updated_at=now))
        return (await uow.execute(statement)).rowcount

    async def page(
        self, uow: UnitOfWork, *, campaign_id: str | None, customer_id: str, offer_id: str, channel: int, state: int,
        after: tuple[datetime, str] | None, limit: int,
    ) -> list[Dispatch]:
        query = sa.select(t)
        if campaign_id is not None:
            query = query.where(t.c.campaign_id == campaign_id)
        if customer_id:
            query = query.where(t.c.customer_id == customer_id)
        if offer_id:
            query = query.where(t.c.offer_id == offer_id)
        if channel:
            query = query.where(t.c.channel == channel)
        if state:
            query = query.where(t.c.state == state)
        if after is not None:
            query = query.where(sa.tuple_(t.c.created_at, t.c.dispatch_id) < sa.tuple_(*after))
        query = query.order_by(t.c.created_at.desc(), t.c.dispatch_id.desc()).limit(limit)
        return [_from_row(row) for row in (await uow.execute(query)).all()]

    async def get(self, uow: UnitOfWork, campaign_id: str, dispatch_id_: str) -> Dispatch | None:
        row = (await uow.execute(sa.select(t).where(t.c.campaign_id == campaign_id,
                                                    t.c.dispatch_id == dispatch_id_))).first()
        return _from_row(row) if row is not None else None
