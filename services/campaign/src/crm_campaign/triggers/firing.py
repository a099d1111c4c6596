"""Firing trigger rules on the peers' feed events, inside the follower's apply transaction (so the
feed cursor, the firing record and the dispatch it queues commit together).

For each enabled rule whose condition the event meets (triggers.rules.matches) and whose
population holds the customer: record the firing under its unique (rule, customer, event key) -
a replayed or repeated event finds it there and does nothing - then claim the cool-down with a
conditional upsert, then act. An offer action runs the batch build's funnel (consent,
do-not-contact, open complaints, suitability, caps, quiet hours, arbitration) for this one
customer and queues the dispatch through the same path as a build; it acts only while the
campaign is RUNNING. A care-task action creates an OPEN care task (care.service) assigned to the
customer's relationship manager: book's (`BookRepository.manager_of`), or, while book's own
follower has not yet seen the customer, the manager the contact read model took from the same
feed in this very transaction.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from crm_campaign.audience import funnel
from crm_campaign.audience import rules as audience_rules
from crm_campaign.audience.service import Audiences
from crm_campaign.book.repository import BookRepository
from crm_campaign.campaigns.model import CampaignType
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.care import rules as care_rules
from crm_campaign.care.model import CareTask
from crm_campaign.care.service import RaisedCareTasks
from crm_campaign.dispatch.service import Dispatches
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.rates.service import ResponseRates
from crm_campaign.triggers import calendar, events, rules
from crm_campaign.triggers.calendar_repository import CalendarRepository
from crm_campaign.triggers.candidates import TriggerCandidates
from crm_campaign.triggers.firing_repository import FiringRepository
from crm_campaign.triggers.model import (
    CareTaskAction,
    Firing,
    FiringOutcome,
    TriggerEvent,
    TriggerEventType,
    TriggerRule,
)
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.feed_consumer import ChangeEvent
from crmkit.logs import get_logger

log = get_logger("crm.campaign.triggers")

# The principal trigger firings act as (dispatch feed events, audience rows).
ACTOR = "campaign-triggers"
DEFAULT_DUE_AFTER = timedelta(days=3)


@dataclasses.dataclass(frozen=True)
class Outcome:
    outcome: FiringOutcome
    campaign_id: str = ""
    offer_id: str = ""
    suppression_reason: int = 0


class TriggerFiring:
    def __init__(self, *, repository: FiringRepository, campaigns: CampaignRepository, offers: OfferRepository,
                 audiences: Audiences, dispatches: Dispatches, candidates: TriggerCandidates,
                 care_tasks: RaisedCareTasks | None = None, book: BookRepository | None = None,
                 calendar_facts: CalendarRepository | None = None,
                 exempt_from_complaints: frozenset[int] = frozenset(), rates: ResponseRates | None = None,
                 clock: Clock = utc_now) -> None:
        self._repository = repository
        self._campaigns = campaigns
        self._offers = offers
        self._audiences = audiences
        self._dispatches = dispatches
        self._candidates = candidates
        self._care_tasks = care_tasks
        self._book = book or BookRepository()
        self._calendar = calendar_facts or CalendarRepository()
        self._exempt = exempt_from_complaints
        self._rates = rates
        self._clock = clock

    async def apply(self, uow: UnitOfWork, change: ChangeEvent) -> bool:
        """A feed follower's apply: whether the event changed anything here. Calendar facts
        (anniversary, last own activity) are kept for the calendar scan."""
        fact = calendar.fact_of(change)
        if fact is not None:
            await self._calendar.record(uow, fact)
        event = events.read(change)
        if event is None:
            return fact is not None
        return await self.fire(uow=uow, event=event) or fact is not None

    async def fire(self, *, uow: UnitOfWork, event: TriggerEvent) -> bool:
        changed = False
        if event.event_type is TriggerEventType.PAYROLL and event.payroll_month is not None:
            assert event.amount is not None, "read with the credit's amount"
            await self._repository.record_payroll(uow, event.customer_id, event.payroll_month, event.amount)
            event = dataclasses.replace(event, payroll_months=await self._repository.payroll_months(
                uow, event.customer_id))
            changed = True
        for rule in await self._repository.enabled_rules(uow, event.event_type):
            if not rules.matches(rule, event):
                continue
            if rule.population_segment and not await self._repository.in_segment(uow, rule.population_segment,
                                                                                  event.customer_id):
                continue
            firing_id = await self._repository.record(uow, Firing(
                trigger_rule_id=rule.trigger_rule_id, customer_id=event.customer_id, event_key=event.key,
                event_type=event.event_type, occurred_at=event.occurred_at))
            if firing_id is None:
                continue  # this event fired (or was cooled down for) this rule already
            changed = True
            assert rule.cooldown is not None, "stored normalised"
            if not await self._repository.claim_cooldown(uow, trigger_rule_id=rule.trigger_rule_id,
                                                         customer_id=event.customer_id, at=event.occurred_at,
                                                         cooldown=rule.cooldown):
                await self._repository.set_outcome(uow, firing_id, FiringOutcome.COOLED_DOWN)
                continue
            done = await self._act(uow, rule, event)
            await self._repository.set_outcome(uow, firing_id, done.outcome, campaign_id=done.campaign_id,
                                               offer_id=done.offer_id, suppression_reason=done.suppression_reason)
            await self._repository.count_fire(uow, rule.trigger_rule_id, event.occurred_at)
            log.info("trigger_fired", trigger_rule_id=rule.trigger_rule_id, event_type=event.event_type.name,
                     outcome=done.outcome.name)
        return changed

    async def _act(self, uow: UnitOfWork, rule: TriggerRule, event: TriggerEvent) -> Outcome:
        action = rule.offer_action
        if action is None:
            assert rule.care_task_action is not None, "a rule has one action"
            return await self._care_task(uow, rule, rule.care_task_action, event)
        campaign_id = rule.campaign_id
        campaign = await self._campaigns.get(uow, campaign_id)
        if campaign is None or not rules.acts_on_campaign(campaign):
            return Outcome(FiringOutcome.CAMPAIGN_NOT_RUNNING, campaign_id)
        offer_id = action.offer.rsplit("/", 1)[-1] if action.offer else ""
        offers = [o for o in await self._offers.page(uow, campaign_id) if not offer_id or o.offer_id == offer_id]
        # The observed response rates, cached for a short while (rates.service): one event, one customer.
        plan = audience_rules.plan_of(campaign, offers,
                                      suppress_open_complaints=CampaignType(campaign.type) not in self._exempt,
                                      rates=await self._rates.current() if self._rates is not None else None)
        now = self._clock()
        candidate = await self._candidates.load(uow, plan, event.customer_id, now=now,
                                                cap_horizon=audience_rules.cap_horizon(plan))
        result = funnel.run(plan, [candidate], now=now)
        added = await self._audiences.assign(uow=uow, campaign=campaign, eligible=result.eligible,
                                             suppressed=result.suppressed, actor=ACTOR)
        await self._dispatches.displace(uow=uow, displaced=result.displaced, actor=ACTOR)
        if result.eligible:
            chosen = result.eligible[0]
            outcome = (FiringOutcome.DISPATCH_QUEUED if added.target + added.control
                       else FiringOutcome.ALREADY_IN_AUDIENCE)
            return Outcome(outcome, campaign_id, chosen.offer_id)
        suppressed = result.suppressed[0]
        return Outcome(FiringOutcome.SUPPRESSED, campaign_id, suppressed.offer_id, int(suppressed.reason))

    async def _care_task(self, uow: UnitOfWork, rule: TriggerRule, action: CareTaskAction,
                         event: TriggerEvent) -> Outcome:
        """An OPEN task for the customer's relationship manager, due `due_after` from now."""
        if self._care_tasks is None:
            return Outcome(FiringOutcome.CARE_TASK_RECORDED)
        # The books are the one record of each customer's manager (book/); one they have not
        # learned yet gets no task, recorded as NO_RELATIONSHIP_MANAGER.
        manager = await self._book.manager_of(uow, event.customer_id) or ""
        if not care_rules.ASSIGNEE.fullmatch(manager):
            return Outcome(FiringOutcome.NO_RELATIONSHIP_MANAGER)
        due_after = DEFAULT_DUE_AFTER if action.due_after is None else action.due_after
        created = await self._care_tasks.raise_task(uow=uow, creator=ACTOR, task=CareTask(
            care_task_id="", customer_id=event.customer_id, kind=action.kind, title=action.title,
            description=f"{rule.display_name}: {event.event_type.name.lower().replace('_', ' ')} "
                        f"({event.occurred_at.date().isoformat()})",
            assignee=manager, due_at=self._clock() + due_after, priority=action.priority,
            source=f"triggerRules/{rule.trigger_rule_id}"))
        if created is None:
            log.warning("care_task_refused", trigger_rule_id=rule.trigger_rule_id)
            return Outcome(FiringOutcome.CARE_TASK_REFUSED)
        return Outcome(FiringOutcome.CARE_TASK_CREATED)
