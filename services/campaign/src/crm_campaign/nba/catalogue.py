"""The running campaigns with their offers, as next best action reads them on every answer.

A running campaign cannot change what was approved (offers change only in DRAFT, its other fields
only in DRAFT but for the display name and description), and every lifecycle step bumps its
version. So the set of (campaign id, version) of the RUNNING campaigns identifies the whole
catalogue: each answer's facts statement returns that stamp, and the catalogue is reloaded only
when it differs from the one held. A launch, pause or completion is seen by the next answer.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from crm_campaign.audience import rules as audience_rules
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.nba.rules import RunningCampaign, running_campaign
from crm_campaign.offers.repository import OfferRepository
from crmkit.db import Database


class RunningCampaigns:
    def __init__(self, *, db: Database, campaigns: CampaignRepository, offers: OfferRepository,
                 exempt_from_complaints: frozenset[int] = frozenset()) -> None:
        self._db = db
        self._exempt = exempt_from_complaints
        self._campaigns = campaigns
        self._offers = offers
        self._stamp: str | None = None
        self._entries: list[RunningCampaign] = []
        self._horizon = timedelta(0)
        self._lock = asyncio.Lock()

    @property
    def horizon(self) -> timedelta:
        """How far back contacts matter for any running campaign: its longest frequency-cap period."""
        return self._horizon

    def current(self, stamp: str) -> list[RunningCampaign] | None:
        """The campaigns when `stamp` is the one held; None when they must be reloaded."""
        return self._entries if stamp == self._stamp else None

    async def reload(self, stamp: str) -> None:
        """Read every running campaign with its offers, in one read-only unit of work, unless a
        concurrent answer has just loaded the ones `stamp` names."""
        async with self._lock:
            if stamp == self._stamp:
                return
            async with self._db.unit_of_work(read_only=True) as uow:
                running = await self._campaigns.running(uow)
                offers = await self._offers.of_campaigns(uow, [c.campaign_id for c in running])
            entries = [running_campaign(c, [o for o in offers if o.campaign_id == c.campaign_id],
                                        exempt_from_complaints=self._exempt) for c in running]
            self._entries = entries
            self._stamp = ",".join(f"{e.campaign.campaign_id}:{e.campaign.version}" for e in entries)
            self._horizon = max((audience_rules.cap_horizon(e.plan) for e in entries), default=timedelta(0))
