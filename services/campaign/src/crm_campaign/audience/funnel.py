"""The audience funnel: pure decisions over injected inputs, no I/O.

Each candidate runs through the checks in this order, and is suppressed under the first that
leaves them with no offer or no channel (so the counts add up to the candidates):

INELIGIBLE -> DO_NOT_CONTACT -> OPEN_COMPLAINT -> NO_CONSENT -> UNSUITABLE / SUITABILITY_UNKNOWN
-> FREQUENCY_CAP -> QUIET_HOURS -> NO_REACHABLE_CHANNEL -> ARBITRATION_LOST -> MAX_CONTACTS.

Inputs come from read models of the peers' feeds (segment membership, profile's consents and
contact preferences, feedback's open complaints) and from the campaign service's own dispatches
(contacts so far, rival campaigns' planned contacts); the builder loads them and hands them in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from crm_campaign.audience import scoring
from crm_campaign.audience.model import Eligible, Suppressed
from crm_campaign.audience.scoring import OfferScore, Propensity
from crm_campaign.campaigns.model import FrequencyCapScope, QuietHours
from crm_campaign.dispatch.model import DispatchError, SuppressionReason
from crm_campaign.rates.rules import DEFAULT_RATE

# Offers at or below this product risk level need no suitability check (R1, the lowest).
NO_CHECK_RISK_LEVEL = 1
R = SuppressionReason


@dataclass(frozen=True)
class OfferPlan:
    offer_id: str
    priority: int
    expected_value: Decimal
    product_code: str
    risk_level: int
    # Channels with their template and headline (empty template for inbound channels).
    templates: Mapping[int, tuple[str, str]]
    eligibility_segment: str = ""
    excluded_products: frozenset[str] = frozenset()
    # The offer's observed response rate, smoothed (rates.rules): the probability scoring falls
    # back on when no propensity model scores the customer (audience.scoring). The bank-wide
    # default until audience.rules.with_rates gives the observed one.
    response_rate: float = DEFAULT_RATE
    # Whose propensity model scores the offer (Offer.offer_type); empty: none.
    offer_type: str = ""
    # The offer type's observed response rate by channel, smoothed; empty: nothing observed, and
    # channel choice does not go by rates.
    channel_rates: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Cap:
    max_contacts: int
    period: timedelta
    channel: int  # 0: every channel
    scope: int  # FrequencyCapScope


@dataclass(frozen=True)
class Plan:
    """The campaign as the funnel needs it."""

    campaign_id: str
    segment: str
    channels: tuple[int, ...]
    strategy: int
    offers: tuple[OfferPlan, ...]
    caps: tuple[Cap, ...] = ()
    quiet_hours: QuietHours | None = None
    ends_at: datetime | None = None
    max_contacts: int = 0
    suppress_open_complaints: bool = True


@dataclass(frozen=True)
class PastContact:
    campaign_id: str
    channel: int
    at: datetime


@dataclass(frozen=True)
class Rival:
    """Another running campaign's planned or recent contact with the customer."""

    campaign_id: str
    offer_id: str
    score: float
    sent: bool
    dispatch_id: str = ""


@dataclass(frozen=True)
class Candidate:
    customer_id: str
    segments: frozenset[str] = frozenset()
    held_products: frozenset[str] = frozenset()
    do_not_contact: bool = False
    open_complaint: bool = False
    consented_channels: frozenset[int] = frozenset()
    reachable_channels: frozenset[int] = frozenset()
    preferred_channel: int = 0
    time_zone: str = ""
    # Offers risk found unsuitable; None when risk could not be asked (every checked offer unknown).
    unsuitable_offers: frozenset[str] | None = None
    contacts: tuple[PastContact, ...] = ()
    rivals: tuple[Rival, ...] = ()
    # The customer's probabilities by offer type, where a propensity model could score them.
    propensities: Mapping[str, Propensity] = field(default_factory=dict)


@dataclass
class FunnelResult:
    candidate_count: int = 0
    eligible: list[Eligible] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    # Queued dispatches of rival campaigns that lost to this one: (dispatch id, winning offer).
    displaced: list[tuple[str, str]] = field(default_factory=list)
    collisions: int = 0

    def counts(self) -> dict[SuppressionReason, int]:
        found = Counter(s.reason for s in self.suppressed)
        return {reason: found.get(reason, 0) for reason in ORDER}


ORDER = (R.INELIGIBLE, R.DO_NOT_CONTACT, R.OPEN_COMPLAINT, R.NO_CONSENT, R.UNSUITABLE, R.SUITABILITY_UNKNOWN,
         R.FREQUENCY_CAP, R.QUIET_HOURS, R.NO_REACHABLE_CHANNEL, R.ARBITRATION_LOST, R.MAX_CONTACTS)


def run(plan: Plan, candidates: Iterable[Candidate], *, now: datetime) -> FunnelResult:
    result = FunnelResult()
    passed: list[tuple[float, Eligible, Candidate]] = []
    # The send time depends only on `now`, the quiet hours and the customer's zone: worked out once
    # per zone, not once per customer (a million customers share a handful of zones).
    send_times: dict[str, datetime] = {}
    for candidate in candidates:
        result.candidate_count += 1
        decided = _decide(plan, candidate, now=now, result=result, send_times=send_times)
        if isinstance(decided, Suppressed):
            result.suppressed.append(decided)
        else:
            passed.append(decided)
    passed.sort(key=lambda item: (-item[0], item[1].customer_id))
    limit = plan.max_contacts or len(passed)
    for index, (_, eligible, candidate) in enumerate(passed):
        if index < limit:
            result.eligible.append(eligible)
            result.displaced += [(r.dispatch_id, f"campaigns/{plan.campaign_id}/offers/{eligible.offer_id}")
                                 for r in candidate.rivals if not r.sent and r.dispatch_id]
        else:
            result.suppressed.append(Suppressed(candidate.customer_id, R.MAX_CONTACTS, eligible.offer_id,
                                                eligible.channel, plan.segment))
    return result


def _decide(plan: Plan, c: Candidate, *, now: datetime, result: FunnelResult, send_times: dict[str, datetime]
            ) -> Suppressed | tuple[float, Eligible, Candidate]:
    def out(reason: SuppressionReason, offer: str = "", channel: int = 0,
            error: DispatchError | None = None) -> Suppressed:
        return Suppressed(c.customer_id, reason, offer, channel, plan.segment, error)

    offers = [o for o in plan.offers
              if (not o.eligibility_segment or o.eligibility_segment in c.segments)
              and not (o.excluded_products & c.held_products)]
    if not offers:
        return out(R.INELIGIBLE)
    if c.do_not_contact:
        return out(R.DO_NOT_CONTACT)
    if c.open_complaint and plan.suppress_open_complaints:
        return out(R.OPEN_COMPLAINT)
    channels = [ch for ch in plan.channels if ch in c.consented_channels]
    if not channels:
        return out(R.NO_CONSENT)
    suitable = _suitable(offers, c)
    if not suitable:
        return out(R.SUITABILITY_UNKNOWN if c.unsuitable_offers is None else R.UNSUITABLE)
    channels = [ch for ch in channels if not _capped(plan, c, ch, now)]
    if not channels:
        return out(R.FREQUENCY_CAP)
    send_at = send_times.get(c.time_zone)
    if send_at is None:
        send_at = send_times[c.time_zone] = next_send_time(now, plan.quiet_hours, c.time_zone)
    if plan.ends_at is not None and send_at >= plan.ends_at:
        return out(R.QUIET_HOURS)
    reachable = [ch for ch in channels if ch in c.reachable_channels]
    scored = [(score_of(plan, o, c, reachable), o) for o in suitable]
    scored_best, best = max(scored, key=lambda item: (item[0].score, item[1].offer_id))
    if not scored_best.channel:
        return out(R.NO_REACHABLE_CHANNEL, best.offer_id)
    if c.rivals:
        result.collisions += 1
        winner = max(c.rivals, key=lambda r: (r.sent, r.score))
        if winner.sent or winner.score >= scored_best.score:
            winning = f"campaigns/{winner.campaign_id}/offers/{winner.offer_id}"
            return out(R.ARBITRATION_LOST, best.offer_id, error=DispatchError(
                "ARBITRATION_LOST", "another running campaign has a better offer for this customer",
                {"winner_offer": winning}))
    template, headline = best.templates[scored_best.channel]
    return scored_best.score, Eligible(
        customer_id=c.customer_id, offer_id=best.offer_id, channel=scored_best.channel,
        channel_reason=scored_best.channel_reason, template_id=template, headline=headline, segment=plan.segment,
        not_before_at=send_at if send_at > now else None, score=scored_best.score,
        probability=scored_best.probability, propensity_model=scored_best.model), c


def score_of(plan: Plan, offer: OfferPlan, c: Candidate, reachable: Sequence[int]) -> OfferScore:
    """The offer's score for the customer, on the channel it would use among `reachable`."""
    return scoring.offer_score(
        priority=offer.priority, expected_value=offer.expected_value, response_rate=offer.response_rate,
        propensity=scoring.propensity_for(c.propensities, offer.offer_type),
        channels=[ch for ch in reachable if ch in offer.templates], strategy=plan.strategy,
        preferred=c.preferred_channel, channel_rates=offer.channel_rates)


def _suitable(offers: Sequence[OfferPlan], c: Candidate) -> list[OfferPlan]:
    """Offers that need no check, or that risk did not refuse; never an unchecked risky product."""
    if c.unsuitable_offers is None:
        return [o for o in offers if o.risk_level <= NO_CHECK_RISK_LEVEL]
    return [o for o in offers if o.offer_id not in c.unsuitable_offers]


def _capped(plan: Plan, c: Candidate, channel: int, now: datetime) -> bool:
    for cap in plan.caps:
        if cap.channel and cap.channel != channel:
            continue
        counted = [x for x in c.contacts if x.at > now - cap.period
                   and (not cap.channel or x.channel == cap.channel)
                   and (cap.scope != FrequencyCapScope.CAMPAIGN or x.campaign_id == plan.campaign_id)]
        if len(counted) >= cap.max_contacts:
            return True
    return False


def next_send_time(now: datetime, quiet: QuietHours | None, customer_zone: str) -> datetime:
    """The first moment at or after `now` outside quiet hours (and quiet days), in the quiet
    hours' time zone, or else the customer's, or else UTC."""
    if quiet is None or (quiet.start is None and not quiet.quiet_days):
        return now
    zone = ZoneInfo(quiet.time_zone or customer_zone or "UTC")
    local = now.astimezone(zone)
    for _ in range(8 * 24 * 4):  # a week and a day of quarter hours is always enough to leave them
        if not _is_quiet(local, quiet):
            return local.astimezone(now.tzinfo)
        local = (local + timedelta(minutes=15)).replace(second=0, microsecond=0)
        local = local.replace(minute=local.minute - local.minute % 15)
    return datetime.max.replace(tzinfo=now.tzinfo)


def _is_quiet(local: datetime, quiet: QuietHours) -> bool:
    if local.isoweekday() in quiet.quiet_days:
        return True
    if quiet.start is None or quiet.end is None:
        return False
    start = time(quiet.start.hours, quiet.start.minutes)
    end = time(quiet.end.hours, quiet.end.minutes)
    moment = local.time()
    return start <= moment < end if start <= end else moment >= start or moment < end
