"""Audience orchestration: store what a build decided, split the control group, queue the dispatches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crm_campaign.audience import rules
from crm_campaign.audience.model import AudienceGroup, Eligible, Member, Suppressed
from crm_campaign.audience.repository import AudienceRepository
from crm_campaign.campaigns.model import Campaign
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.dispatch.model import Planned, SuppressionReason
from crm_campaign.dispatch.service import Dispatches
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork


@dataclass(frozen=True)
class Assigned:
    """What one wave added: customers new to the campaign's audience, by group."""

    target: int
    control: int
    suppressed: int


class Audiences:
    def __init__(self, *, repository: AudienceRepository, campaigns: CampaignRepository, dispatches: Dispatches,
                 clock: Clock = utc_now) -> None:
        self._repository = repository
        self._campaigns = campaigns
        self._dispatches = dispatches
        self._clock = clock

    async def assign(self, *, uow: UnitOfWork, campaign: Campaign, eligible: Sequence[Eligible],
                     suppressed: Sequence[Suppressed], actor: str) -> Assigned:
        """Add a wave: eligible customers split into control (held out by the campaign's seed) and
        target (queued for dispatch), suppressed customers recorded with their reason. A customer
        already in the campaign's audience keeps their place, and gets no second dispatch."""
        now = self._clock()
        members = [Member(
            campaign_id=campaign.campaign_id, customer_id=e.customer_id,
            group=(AudienceGroup.CONTROL if rules.in_control_group(
                seed=campaign.control_seed, customer_id=e.customer_id,
                holdout_percentage=campaign.control_group.holdout_percentage) else AudienceGroup.TARGET),
            offer_id=e.offer_id, channel=e.channel, segment=e.segment,
            suppression_reason=SuppressionReason.UNSPECIFIED,
        ) for e in eligible]
        members += [Member(campaign_id=campaign.campaign_id, customer_id=s.customer_id, group=AudienceGroup.SUPPRESSED,
                           offer_id=s.offer_id, channel=s.channel, segment=s.segment, suppression_reason=s.reason)
                    for s in suppressed]
        added = {m.customer_id: m for m in await self._repository.insert(uow, members, now)}
        planned = [Planned(customer_id=e.customer_id, offer_id=e.offer_id, channel=e.channel,
                           channel_reason=e.channel_reason, template_id=e.template_id, headline=e.headline,
                           not_before_at=e.not_before_at, arbitration_score=e.score,
                           propensity_model=e.propensity_model)
                   for e in eligible if (m := added.get(e.customer_id)) and m.group is AudienceGroup.TARGET]
        planned += [Planned(customer_id=s.customer_id, offer_id=s.offer_id, channel=s.channel,
                            suppression_reason=s.reason, error=s.error)
                    for s in suppressed if s.customer_id in added]
        await self._dispatches.queue(uow=uow, campaign_id=campaign.campaign_id, planned=planned, actor=actor)
        counts = {group: sum(m.group is group for m in added.values()) for group in AudienceGroup}
        await self._campaigns.add_audience_counts(uow, campaign.campaign_id, target=counts[AudienceGroup.TARGET],
                                                  control=counts[AudienceGroup.CONTROL])
        return Assigned(target=counts[AudienceGroup.TARGET], control=counts[AudienceGroup.CONTROL],
                        suppressed=counts[AudienceGroup.SUPPRESSED])
