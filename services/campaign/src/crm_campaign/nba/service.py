"""Next best action for one customer now: read what campaign knows (one statement), ask risk about
the offers that need a suitability check (outside any transaction, with its own short deadline),
decide with the funnel's rules, store the decision (one statement) and audit the read."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime

from crm_campaign.audience import rules as audience_rules
from crm_campaign.audience.scoring import Propensity
from crm_campaign.audience.suitability import NoRisk, Suitability
from crm_campaign.nba import rules
from crm_campaign.nba.catalogue import RunningCampaigns
from crm_campaign.nba.model import CustomerFacts, Decision
from crm_campaign.nba.repository import DecisionRepository
from crm_campaign.nba.rules import RunningCampaign
from crm_campaign.propensity.scorers import PropensityScorers
from crm_campaign.rates.service import ResponseRates
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import Database
from crmkit.errors import Unavailable
from crmkit.logs import get_logger
from crmkit.resources import Purpose
from crmkit.validation import Violations

log = get_logger("crm.campaign.nba")


class NextBestActions:
    def __init__(self, *, db: Database, repository: DecisionRepository, catalogue: RunningCampaigns,
                 audit: AuditWriter, scorers: PropensityScorers, suitability: Suitability | None = None,
                 rates: ResponseRates | None = None, clock: Clock = utc_now) -> None:
        self._db = db
        self._repository = repository
        self._catalogue = catalogue
        self._audit = audit
        self._suitability: Suitability = suitability or NoRisk()
        self._scorers = scorers
        self._rates = rates
        self._clock = clock

    async def decide(self, *, customer: str, channel: int, max_actions: int, purpose: Purpose,
                     actor: Principal) -> Decision:
        """The decision for `customer` (`customers/{customer_id}`), stored under a new decision id."""
        v = Violations()
        customer_id = rules.validate(customer=customer, channel=channel, max_actions=max_actions, purpose=purpose,
                                     v=v)
        v.raise_if_any()
        now = self._clock()
        facts, running = await self._facts(customer_id, now=now)
        rules.check_customer(actor, facts)
        candidates = [r for r in running if rules.in_audience(r.campaign, facts)]
        if self._rates is not None and candidates:
            # The observed response rates, cached for a short while (rates.service), as a build uses them.
            observed = await self._rates.current()
            candidates = [dataclasses.replace(r, plan=audience_rules.with_rates(r.plan, observed))
                          for r in candidates]
        verdicts, propensities = await asyncio.gather(
            self._ask_risk(candidates, facts, channel=channel), self._propensities(candidates, facts, channel, now))
        unsuitable, degraded = verdicts
        actions, excluded = rules.decide(candidates, facts, unsuitable, channel=channel, max_actions=max_actions,
                                         now=now, propensities=propensities)
        decision = Decision(decision_id=str(uuid.uuid4()), customer_id=customer_id, channel=channel,
                            requester=actor.subject, actions=tuple(actions), excluded=tuple(excluded),
                            degraded_reasons=(rules.SUITABILITY_UNAVAILABLE,) if degraded else ())
        # The decision and the read's audit record are both committed before the answer; their two
        # commits are independent, so they are waited for together.
        stored, _ = await asyncio.gather(self._store(decision), self._audit.record(AuditEntry(
            principal=actor.subject, action="customer.next_best_action", resource_name=f"customers/{customer_id}",
            purpose=purpose.purpose, justification=purpose.justification)))
        log.info("next_best_action", decision_id=stored.decision_id, actions=len(actions), excluded=len(excluded),
                 degraded=stored.degraded)
        return stored

    async def _store(self, decision: Decision) -> Decision:
        async with self._db.raw() as connection:
            return await self._repository.insert(connection, decision, self._clock())

    async def _facts(self, customer_id: str, *, now: datetime) -> tuple[CustomerFacts, list[RunningCampaign]]:
        """The customer's facts and the running campaigns, read together; when the campaigns changed
        since the catalogue was loaded, it is reloaded and the facts read again over its horizon."""
        for _ in range(3):
            horizon = self._catalogue.horizon
            async with self._db.raw() as connection:
                facts, stamp = await self._repository.facts(connection, customer_id, now=now, horizon=horizon)
            running = self._catalogue.current(stamp)
            if running is not None:
                return facts, running
            await self._catalogue.reload(stamp)
        raise Unavailable("the running campaigns keep changing; retry", reason="CAMPAIGNS_CHANGING")

    async def _propensities(self, candidates: Sequence[RunningCampaign], facts: CustomerFacts, channel: int,
                            now: datetime) -> dict[str, Propensity]:
        """The customer's probabilities on `channel` from the newest model of each candidate offer's
        type (scored in a thread); none when campaign holds no features of the customer."""
        wanted = {o.offer_type for r in candidates for o in r.plan.offers if o.offer_type}
        versions = [v for v in facts.models if v.offer_type in wanted]
        if facts.features is None or not versions:
            return {}
        return await self._scorers.customer(versions, facts.features, (channel,), at=now)

    async def _ask_risk(self, candidates: Sequence[RunningCampaign], facts: CustomerFacts, *,
                        channel: int) -> tuple[dict[str, frozenset[str] | None], bool]:
        """Unsuitable offers by campaign, asked concurrently for the campaigns whose offers need a
        check and could reach the customer on this channel; True when risk did not answer for one."""
        verdicts: dict[str, frozenset[str] | None] = {r.campaign.campaign_id: frozenset() for r in candidates}
        if facts.do_not_contact:
            return verdicts, False
        plans = [r.plan for r in candidates if rules.needs_suitability(r.plan) and channel in r.plan.channels]
        answers = await asyncio.gather(*(self._suitability.unsuitable(p, [facts.customer_id]) for p in plans))
        for plan, answer in zip(plans, answers, strict=True):
            verdicts[plan.campaign_id] = None if answer is None else answer.get(facts.customer_id, frozenset())
        return verdicts, any(answer is None for answer in answers)
