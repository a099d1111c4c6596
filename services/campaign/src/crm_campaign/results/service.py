"""Campaign results, live while the campaign runs."""

from __future__ import annotations

from decimal import Decimal

from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.campaigns.service import not_found
from crm_campaign.engagement import rules as engagement_rules
from crm_campaign.engagement.model import DEFAULT_ATTRIBUTION_WINDOW
from crm_campaign.results import rules
from crm_campaign.results.repository import ResultsRepository
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork


class CampaignResults:
    def __init__(self, *, repository: ResultsRepository, campaigns: CampaignRepository, clock: Clock = utc_now
                 ) -> None:
        self._repository = repository
        self._campaigns = campaigns
        self._clock = clock

    async def get(self, *, uow: UnitOfWork, campaign_id: str, confidence_level: float) -> rules.Results:
        level = rules.confidence_level(confidence_level)
        campaign = await self._campaigns.get(uow, campaign_id)
        if campaign is None:
            raise not_found(campaign_id)
        engagement_rules.check_launched(campaign)
        cells = await self._repository.cells(uow, campaign_id)
        return rules.results(
            cells, channel_costs={cost.channel: cost.cost_per_contact.amount for cost in campaign.channel_costs
                                  if cost.cost_per_contact is not None},
            fixed_cost=campaign.fixed_cost.amount if campaign.fixed_cost else Decimal(0), level=level,
            closed_at=campaign.closed_at, window=campaign.attribution_window or DEFAULT_ATTRIBUTION_WINDOW,
            now=self._clock())
