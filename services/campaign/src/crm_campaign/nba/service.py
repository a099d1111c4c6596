"""Next best action for one customer now: read what campaign knows (one read-only unit of work),
ask risk about the offers that need a suitability check (outside any transaction, with its own
short deadline), decide with the funnel's rules, and store the decision (one short write)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta

from crm_campaign.audience import rules as audience_rules
from crm_campaign.audience.suitability import NoRisk, Suitability
from crm_campaign.campaigns.model import Campaign
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.nba import rules
from crm_campaign.nba.model import CustomerFacts, Decision
from crm_campaign.nba.repository import DecisionRepository
from crm_campaign.offers.model import Offer
from crm_campaign.offers.repository import OfferRepository
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import Database
from crmkit.logs import get_logger
from crmkit.resources import Purpose
from crmkit.validation import Violations

log = get_logger("crm.campaign.nba")


class NextBestActions:
    def __init__(self, *, db: Database, repository: DecisionRepository, campaigns: CampaignRepository,
                 offers: OfferRepository, audit: AuditWriter, suitability: Suitability | None = None,
                 exempt_from_complaints: frozenset[int] = frozenset(), clock: Clock = utc_now) -> None:
        self._db = db
        self._repository = repository
        self._campaigns = campaigns
        self._offers = offers
        self._audit = audit
        self._suitability: Suitability = suitability or NoRisk()
        self._exempt = exempt_from_complaints
        self._clock = clock

    async def decide(self, *, customer: str, channel: int, max_actions: int, purpose: Purpose,
                     actor: Principal) -> Decision:
        """The decision for `customer` (`customers/{customer_id}`), stored under a new decision id."""
        v = Violations()
        customer_id = rules.validate(customer=customer, channel=channel, max_actions=max_actions, purpose=purpose,
                                     v=v)
        v.raise_if_any()
        now = self._clock()
        async with self._db.unit_of_work(read_only=True) as uow:
            facts = await self._repository.customer(uow, customer_id)
            rules.check_customer(actor, facts)
            running = [c for c in await self._campaigns.running_for(uow, sorted(facts.segments))
                       if rules.in_audience(c, facts)]
            offers = await self._offers.of_campaigns(uow, [c.campaign_id for c in running])
            candidates = [(c, [o for o in offers if o.campaign_id == c.campaign_id]) for c in running]
            horizon = max((audience_rules.cap_horizon(rules.plan_for(c, os)) for c, os in candidates),
                          default=timedelta(0))
            facts = await self._repository.with_history(uow, facts, now=now, horizon=horizon)
        verdicts, degraded = await self._ask_risk(candidates, facts, channel=channel)
        actions, excluded = rules.decide(candidates, facts, verdicts, channel=channel, max_actions=max_actions,
                                         now=now, exempt_from_complaints=self._exempt)
        decision = Decision(decision_id=str(uuid.uuid4()), customer_id=customer_id, channel=channel,
                            requester=actor.subject, actions=tuple(actions), excluded=tuple(excluded),
                            degraded_reasons=(rules.SUITABILITY_UNAVAILABLE,) if degraded else ())
        async with self._db.unit_of_work() as uow:
            stored = await self._repository.insert(uow, decision, self._clock())
        await self._audit.record(AuditEntry(principal=actor.subject, action="customer.next_best_action",
                                            resource_name=f"customers/{customer_id}", purpose=purpose.purpose,
                                            justification=purpose.justification))
        log.info("next_best_action", decision_id=stored.decision_id, actions=len(actions), excluded=len(excluded),
                 degraded=stored.degraded)
        return stored

    async def _ask_risk(self, candidates: Sequence[tuple[Campaign, Sequence[Offer]]], facts: CustomerFacts, *,
                        channel: int) -> tuple[dict[str, frozenset[str] | None], bool]:
        """Unsuitable offers by campaign, asked concurrently for the campaigns whose offers need a
        check and could reach the customer on this channel; True when risk did not answer for one."""
        verdicts: dict[str, frozenset[str] | None] = {c.campaign_id: frozenset() for c, _ in candidates}
        if facts.do_not_contact:
            return verdicts, False
        plans = [p for p in (rules.plan_for(c, os) for c, os in candidates)
                 if rules.needs_suitability(p) and channel in p.channels]
        answers = await asyncio.gather(*(self._suitability.unsuitable(p, [facts.customer_id]) for p in plans))
        for plan, answer in zip(plans, answers, strict=True):
            verdicts[plan.campaign_id] = None if answer is None else answer.get(facts.customer_id, frozenset())
        return verdicts, any(answer is None for answer in answers)
