"""Audience builds as operations (crmkit.operations): `start` creates the operation in the RPC's
unit of work; the coordinator then loads the inputs, runs the funnel and, for a real build,
stores the wave (members, control split, queued dispatches, rivals displaced) and completes the
operation in one transaction, so a cancelled or failed build reserves nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.message import Message

from crm_campaign.audience import funnel, rules
from crm_campaign.audience.funnel import FunnelResult
from crm_campaign.audience.inputs import AudienceInputs
from crm_campaign.audience.model import Eligible
from crm_campaign.audience.service import Audiences
from crm_campaign.audience.suitability import NoRisk, Suitability, needs_check
from crm_campaign.campaigns.model import CampaignType
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.campaigns.service import not_found
from crm_campaign.dispatch.service import Dispatches
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.propensity.scorers import PropensityScorers
from crm_campaign.rates.service import ResponseRates
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import (
    UNFINISHED,
    OperationRunner,
    Operations,
    RunningOperation,
    Started,
    complete_in,
    name_of,
    parse_name,
)

log = get_logger("crm.campaign.audience")

KIND = "campaign.audience_build"


@dataclass(frozen=True)
class Build:
    """What a build found (the operation's response, before it becomes an AudienceBuild)."""

    campaign_id: str
    dry_run: bool
    segment: str
    result: FunnelResult
    control_count: int
    target_count: int
    built_at: datetime
    # Eligible customers held out as the control group (the rest are the target).
    control: frozenset[str] = frozenset()
    # The time zone of the campaign's quiet hours ("" when it names none): the days of the
    # expected daily volumes (volumes.py).
    time_zone: str = ""

    @property
    def target(self) -> list[Eligible]:
        """The eligible customers to be contacted (the control group is not)."""
        return [e for e in self.result.eligible if e.customer_id not in self.control]


BuildPayload = Callable[[Build], Message]


class AudienceBuilds:
    def __init__(
        self, *, db: Database, operations: Operations, runner: OperationRunner, campaigns: CampaignRepository,
        offers: OfferRepository, inputs: AudienceInputs, audiences: Audiences, dispatches: Dispatches,
        idempotency: IdempotencyKeys, payload: BuildPayload, exempt_from_complaints: frozenset[int],
        scorers: PropensityScorers, suitability: Suitability | None = None, rates: ResponseRates | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._db = db
        self._operations = operations
        self._runner = runner
        self._campaigns = campaigns
        self._offers = offers
        self._inputs = inputs
        self._audiences = audiences
        self._dispatches = dispatches
        self._idempotency = idempotency
        self._payload = payload
        self._exempt = exempt_from_complaints
        self._scorers = scorers
        self._rates = rates
        self._suitability: Suitability = suitability or NoRisk()
        self._clock = clock

    async def start(self, *, uow: UnitOfWork, campaign_id: str, dry_run: bool, request_id: uuid.UUID | None,
                    request: Message, actor: Principal) -> Started:
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="BuildAudience",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        campaign = await self._campaigns.get(uow, campaign_id, for_update=True)
        if campaign is None:
            raise not_found(campaign_id)
        rules.check_buildable(campaign, dry_run=dry_run)
        if not dry_run and campaign.audience_operation:
            earlier = await self._operations.get(operation_id=parse_name(campaign.audience_operation))
            if earlier.state in UNFINISHED:
                raise FailedPrecondition("another build of this campaign is running", reason="BUILD_RUNNING",
                                         metadata={"operation": campaign.audience_operation})
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=request,
                                                  operation_id=operation_id)
        if not dry_run:
            await self._campaigns.set_audience_operation(uow, campaign_id, name_of(operation_id))

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(self._build, operation_id, campaign_id, dry_run,
                                                                actor.subject))
            log.info("audience_build_started", operation_id=str(operation_id), campaign_id=campaign_id,
                     dry_run=dry_run)

        return Started(operation, launch)

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _build(self, operation_id: uuid.UUID, campaign_id: str, dry_run: bool, actor: str,
                     run: RunningOperation) -> Message:
        await run.progress(stage="loading")
        now = self._clock()
        async with self._db.unit_of_work(read_only=True) as uow:
            campaign = await self._campaigns.get(uow, campaign_id)
            if campaign is None:
                raise not_found(campaign_id)
            # One aggregate per build: the observed response rates every offer falls back on.
            observed = await self._rates.load(uow) if self._rates is not None else None
            plan = rules.plan_of(campaign, await self._offers.page(uow, campaign_id),
                                 suppress_open_complaints=CampaignType(campaign.type) not in self._exempt,
                                 rates=observed)
            candidates = await self._inputs.candidates(uow, plan, now=now, cap_horizon=rules.cap_horizon(plan))
            offer_types = {o.offer_type for o in plan.offers if o.offer_type}
            features = await self._inputs.customer_features(uow, plan) if offer_types else {}
        await run.progress(total=len(candidates), stage="checking")
        # Propensity models score the whole audience at once, in a thread; customers they cannot
        # score keep the observed response rate (audience.scoring).
        scored = await self._scorers.audience(offer_types, features, plan.channels, at=now) if offer_types else {}
        if scored:
            candidates = [dataclasses.replace(c, propensities=scored[c.customer_id]) if c.customer_id in scored
                          else c for c in candidates]
        # Risk is asked outside any transaction; its silence means SUITABILITY_UNKNOWN, never an allow.
        verdict = await self._suitability.unsuitable(plan, [c.customer_id for c in candidates])
        # The inputs come with every checked offer unknown (None). When risk was down that stands;
        # when no offer needed a check, "unknown" and "none refused" leave the same offers (all R1),
        # so only a real verdict is copied onto each candidate.
        if verdict is not None and needs_check(plan):
            candidates = [dataclasses.replace(c, unsuitable_offers=verdict.get(c.customer_id, frozenset()))
                          for c in candidates]
        # Pure and CPU-bound for a large audience: in a thread, so the service keeps answering meanwhile.
        result = await asyncio.to_thread(funnel.run, plan, candidates, now=now)
        control = frozenset(e.customer_id for e in result.eligible if rules.in_control_group(
            seed=campaign.control_seed, customer_id=e.customer_id,
            holdout_percentage=campaign.control_group.holdout_percentage))
        build = Build(campaign_id=campaign_id, dry_run=dry_run, segment=campaign.segment, result=result,
                      control_count=len(control), target_count=len(result.eligible) - len(control),
                      built_at=self._clock(), control=control,
                      time_zone=plan.quiet_hours.time_zone if plan.quiet_hours else "")
        await run.progress(done=len(candidates), stage="counted" if dry_run else "reserving")
        response = self._payload(build)
        if dry_run:
            return response
        async with self._db.unit_of_work() as uow:
            current = await self._campaigns.get(uow, campaign_id, for_update=True)
            if current is None:
                raise not_found(campaign_id)
            rules.check_buildable(current, dry_run=False)
            await self._audiences.assign(uow=uow, campaign=current, eligible=result.eligible,
                                         suppressed=result.suppressed, actor=actor)
            await self._dispatches.displace(uow=uow, displaced=result.displaced, actor=actor)
            raw = await uow.get_raw_connection()
            await complete_in(raw.driver_connection, operation_id, response)
        log.info("audience_built", campaign_id=campaign_id, candidates=result.candidate_count,
                 eligible=len(result.eligible), displaced=len(result.displaced))
        return response
