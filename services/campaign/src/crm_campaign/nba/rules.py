"""Pure next-best-action decisions for one customer, made by the audience funnel's own rules.

Each offer of a running campaign whose audience the customer is in goes through the funnel
(`audience.funnel.run`) as a one-offer plan on the asking channel, so an offer is left out for
exactly the reasons an audience build would leave the customer out: not eligible, do-not-contact,
an open complaint, no consent, unsuitable or unknown suitability, a frequency cap, or a rival
campaign's better or already-sent offer (arbitration). Then, as in a build, a campaign makes one
offer: its best by score; and the campaigns' best offers are ranked by that score. No I/O here.

What differs from a build, because the customer is on the channel now: quiet hours do not apply
(the customer came to us), the only reachable channel is the asking one, and face-to-face or
self-service channels that profile keeps no marketing consent for (branch counter, web, RM visit)
count as consented; do-not-contact and open complaints still leave everything out.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_campaign.audience import funnel
from crm_campaign.audience import rules as audience_rules
from crm_campaign.audience.funnel import Candidate, PastContact, Plan, Rival
from crm_campaign.audience.model import Eligible, Suppressed
from crm_campaign.audience.scoring import Propensity
from crm_campaign.book import rules as book_rules
from crm_campaign.campaigns.model import Campaign, CampaignType, Channel
from crm_campaign.dispatch.model import SuppressionReason
from crm_campaign.nba.model import Action, CustomerFacts, Decision, Excluded, Reason
from crm_campaign.offers.model import Offer
from crmkit.auth import Principal
from crmkit.errors import FieldViolation, InvalidArgument, NotFound
from crmkit.resources import Purpose, ResourceName, check_purpose
from crmkit.validation import Violations

# Channels a customer can be on now; SMS and e-mail only go out.
INBOUND_CHANNELS = frozenset({Channel.BRANCH_COUNTER, Channel.MOBILE_APP, Channel.WEB, Channel.WECHAT,
                              Channel.CALL_CENTRE, Channel.RM_VISIT})
# Inbound channels profile keeps no marketing consent for: the customer is in front of us.
CONSENT_IMPLIED = frozenset({Channel.BRANCH_COUNTER, Channel.WEB, Channel.RM_VISIT})
DEFAULT_MAX_ACTIONS = 3
MAX_ACTIONS = 10
MAX_HEADLINE = 100
MAX_DESCRIPTION = 200
SUITABILITY_UNAVAILABLE = "SUITABILITY_UNAVAILABLE"
# Reasons of this module's own, beside the funnel's suppression reasons.
NOT_ON_CHANNEL = "NOT_ON_CHANNEL"
CONTROL_GROUP = "CONTROL_GROUP"
DECLINED = "DECLINED"
TRIGGERED_OFFER = "TRIGGERED_OFFER"
RESPONSE_PROPENSITY = "RESPONSE_PROPENSITY"
# How long after a triggered campaign's offer went out the counter follows it up.
TRIGGERED_FOLLOW_UP = timedelta(days=30)

R = SuppressionReason
WHY_NOT = {
    R.INELIGIBLE: "outside the offer's eligibility (its segment, or a product the customer already holds)",
    R.DO_NOT_CONTACT: "the customer asked not to be contacted for marketing",
    R.OPEN_COMPLAINT: "the customer has an open complaint; the campaign does not market to them meanwhile",
    R.NO_CONSENT: "no marketing consent for this channel",
    R.UNSUITABLE: "the risk service found the product unsuitable for this customer",
    R.SUITABILITY_UNKNOWN: "the product needs a suitability check and the risk service did not answer in time",
    R.FREQUENCY_CAP: "a frequency cap of the campaign is reached for this customer",
    R.QUIET_HOURS: "the campaign ends before its quiet hours do",
    R.NO_REACHABLE_CHANNEL: "the offer has no content for this channel",
    R.ARBITRATION_LOST: "another campaign has a better offer for this customer",
    R.MAX_CONTACTS: "the campaign has reached its most contacts",
}

# Unsuitable offer ids for the customer, by campaign id; None: risk could not be asked.
Verdicts = Mapping[str, frozenset[str] | None]


@dataclass(frozen=True)
class RunningCampaign:
    """A running campaign, its offers, and its plan as the funnel sees it (made once per version)."""

    campaign: Campaign
    offers: tuple[Offer, ...]
    plan: Plan


def running_campaign(campaign: Campaign, offers: Sequence[Offer], *,
                     exempt_from_complaints: frozenset[int] = frozenset()) -> RunningCampaign:
    return RunningCampaign(campaign, tuple(offers), audience_rules.plan_of(
        campaign, offers, suppress_open_complaints=campaign.type not in exempt_from_complaints))


CUSTOMER = ResourceName("customers/{customer_id}")


def validate(*, customer: str, channel: int, max_actions: int, purpose: Purpose, v: Violations) -> str:
    """The customer id, with every broken rule of the request recorded in `v`."""
    customer_id = CUSTOMER.id_in(customer) or "" if CUSTOMER.check(customer, "customer", v, required=True) else ""
    if v.enum(channel, "channel", frozenset(Channel) - {Channel.UNSPECIFIED}, "Channel", required=True):
        v.check(channel in INBOUND_CHANNELS, "channel", "must be an inbound channel the customer can be on now "
                "(branch counter, mobile app, web, WeChat, call centre or RM visit)")
    v.check(0 <= max_actions <= MAX_ACTIONS, "max_actions", f"must be from 0 to {MAX_ACTIONS} (0 means "
            f"{DEFAULT_MAX_ACTIONS})")
    check_purpose(purpose, v)
    return customer_id


def check_customer(principal: Principal, facts: CustomerFacts) -> None:
    """Known to campaign (profile's or segment's feed named them), and in an RM's own book."""
    if not facts.known:
        raise NotFound(f"customer {facts.customer_id} is unknown to the campaign service",
                       reason="CUSTOMER_NOT_FOUND", metadata={"customer": f"customers/{facts.customer_id}"})
    book_rules.check_in_book(principal, facts.customer_id, facts.relationship_manager_id, reason="OUTSIDE_BOOK")


def in_audience(campaign: Campaign, facts: CustomerFacts) -> bool:
    """Whose offers are candidates: a running batch or inbound campaign whose segment holds the
    customer (an inbound campaign without a segment: everyone). A triggered campaign answers its
    events, so it is a candidate only for a customer it sent an offer to within the follow-up
    window (the counter follows up the offer the customer just received), and only that offer."""
    if campaign.type == CampaignType.TRIGGERED:
        return campaign.campaign_id in facts.triggered_campaigns
    return not campaign.segment or campaign.segment in facts.segments


def decide(campaigns: Sequence[RunningCampaign], facts: CustomerFacts, verdicts: Verdicts, *, channel: int,
           max_actions: int, now: datetime, propensities: Mapping[str, Propensity] | None = None
           ) -> tuple[list[Action], list[Excluded]]:
    """The ranked actions (at most `max_actions`, 0 meaning 3) and the offers left out, with why.
    `propensities`: the customer's probabilities on `channel` by offer type, where a model scored
    them; offers are scored as in a build (audience.scoring), so the same offer ranks the same."""
    limit = max_actions or DEFAULT_MAX_ACTIONS
    excluded: list[Excluded] = []
    best: list[tuple[float, Action]] = []
    for running in sorted(campaigns, key=lambda item: item.campaign.campaign_id):
        campaign = running.campaign
        passed, left_out = _campaign(running, facts, verdicts.get(campaign.campaign_id), channel=channel, now=now,
                                     propensities=propensities or {})
        excluded += left_out
        if not passed:
            continue
        passed.sort(key=lambda item: (-item[0], item[1].offer_id))
        winner = passed[0][1]
        best.append(passed[0])
        excluded += [_out(campaign.campaign_id, action.offer_id, action.product_code, R.ARBITRATION_LOST.name,
                          f"the campaign's offer {winner.offer_id} scores higher for this customer")
                     for _, action in passed[1:]]
    best.sort(key=lambda item: (-item[0], item[1].campaign_id, item[1].offer_id))
    actions = [dataclasses.replace(action, rank=rank) for rank, (_, action) in enumerate(best[:limit], start=1)]
    excluded += [_out(action.campaign_id, action.offer_id, action.product_code, R.ARBITRATION_LOST.name,
                      f"ranked {rank}: only the best {limit} are proposed")
                 for rank, (_, action) in enumerate(best[limit:], start=limit + 1)]
    return actions, excluded


def needs_suitability(plan: Plan) -> bool:
    return any(o.risk_level > funnel.NO_CHECK_RISK_LEVEL for o in plan.offers)


def _campaign(running: RunningCampaign, facts: CustomerFacts, unsuitable: frozenset[str] | None, *, channel: int,
              now: datetime, propensities: Mapping[str, Propensity]
              ) -> tuple[list[tuple[float, Action]], list[Excluded]]:
    campaign = running.campaign
    cid = campaign.campaign_id
    sent = _triggered(campaign, facts)
    valid = [o for o in running.offers if _valid_at(o, now) and (sent is None or o.offer_id in sent)]
    if not valid:
        return [], []

    def all_out(reason: str, description: str) -> tuple[list[tuple[float, Action]], list[Excluded]]:
        return [], [_out(cid, o.offer_id, o.product_code, reason, description) for o in valid]

    if audience_rules.in_control_group(seed=campaign.control_seed, customer_id=facts.customer_id,
                                       holdout_percentage=campaign.control_group.holdout_percentage):
        return all_out(CONTROL_GROUP, "the customer is in the campaign's control group (held out to measure uplift)")
    if cid in facts.declined_campaigns:
        return all_out(DECLINED, "the customer declined an offer of this campaign")
    if channel not in running.plan.channels:
        return all_out(NOT_ON_CHANNEL, f"the campaign does not use the {Channel(channel).name} channel")
    by_id = {o.offer_id: o for o in valid}
    plan = dataclasses.replace(running.plan, offers=tuple(p for p in running.plan.offers if p.offer_id in by_id),
                               quiet_hours=None, ends_at=None, max_contacts=0)
    candidate = dataclasses.replace(
        _candidate(facts, cid, channel=channel, unsuitable=unsuitable, follow_up=sent is not None),
        propensities=propensities)
    passed: list[tuple[float, Action]] = []
    excluded: list[Excluded] = []
    for offer_plan in plan.offers:
        offer = by_id[offer_plan.offer_id]
        if channel not in offer_plan.templates:
            excluded.append(_out(cid, offer.offer_id, offer.product_code, NOT_ON_CHANNEL,
                                 f"the offer is not made on the {Channel(channel).name} channel"))
            continue
        result = funnel.run(dataclasses.replace(plan, offers=(offer_plan,), channels=(channel,)), [candidate], now=now)
        if result.suppressed:
            excluded.append(_why_not(cid, offer, result.suppressed[0]))
            continue
        (eligible,) = result.eligible
        passed.append((eligible.score, Action(
            rank=0, campaign_id=cid, offer_id=offer.offer_id, product_code=offer.product_code,
            headline=eligible.headline[:MAX_HEADLINE], template_id=eligible.template_id, score=eligible.score,
            expected_value=offer.expected_value,
            propensity=eligible.probability if eligible.propensity_model else 0.0,
            propensity_model=eligible.propensity_model,
            reasons=_reasons(campaign, offer, eligible, sent.get(offer.offer_id) if sent else None))))
    return passed, excluded


def _triggered(campaign: Campaign, facts: CustomerFacts) -> dict[str, tuple[int, datetime]] | None:
    """For a triggered campaign, the offers it sent the customer: offer id -> (channel, when), the
    latest; None for other campaigns."""
    if campaign.type != CampaignType.TRIGGERED:
        return None
    sent: dict[str, tuple[int, datetime]] = {}
    for campaign_id, offer_id, channel, at in sorted(facts.triggered, key=lambda item: item[3]):
        if campaign_id == campaign.campaign_id:
            sent[offer_id] = (channel, at)
    return sent


def _candidate(facts: CustomerFacts, campaign_id: str, *, channel: int, unsuitable: frozenset[str] | None,
               follow_up: bool = False) -> Candidate:
    """The customer as the funnel sees them on `channel`. In a follow-up of a triggered offer, the
    campaign's own dispatches are not counted against its caps: the counter repeats the offer the
    customer already received, it does not make a new contact for the campaign."""
    consented = (facts.consented_channels | CONSENT_IMPLIED) - facts.opted_out_channels
    contacts = [c for c in facts.contacts if not (follow_up and c[0] == campaign_id)]
    return Candidate(
        customer_id=facts.customer_id, segments=facts.segments, held_products=facts.held_products,
        do_not_contact=facts.do_not_contact, open_complaint=facts.open_complaint,
        consented_channels=frozenset(int(c) for c in consented), reachable_channels=frozenset({channel}),
        preferred_channel=facts.preferred_channel, unsuitable_offers=unsuitable,
        contacts=tuple(PastContact(c, ch, at) for c, ch, at in contacts),
        rivals=tuple(Rival(c, o, score, sent=sent) for c, o, score, sent in facts.dispatched if c != campaign_id))


def _valid_at(offer: Offer, now: datetime) -> bool:
    start, end = offer.valid_period.start_time, offer.valid_period.end_time
    return (start is None or start <= now) and (end is None or now < end)


def _why_not(campaign_id: str, offer: Offer, suppressed: Suppressed) -> Excluded:
    description = WHY_NOT.get(suppressed.reason, suppressed.reason.name)
    if suppressed.error is not None and "winner_offer" in suppressed.error.metadata:
        description = f"{suppressed.error.metadata['winner_offer']} scores higher or reached the customer first"
    return _out(campaign_id, offer.offer_id, offer.product_code, suppressed.reason.name, description)


def _reasons(campaign: Campaign, offer: Offer, eligible: Eligible, sent: tuple[int, datetime] | None = None
             ) -> tuple[Reason, ...]:
    value = offer.expected_value
    worth = f"{value.amount.normalize():f} {value.currency_code}" if value is not None else "no value"
    reasons = [Reason("CAMPAIGN_PRIORITY", _short(
        f"Priority {offer.priority} x expected value {worth} in campaign {campaign.campaign_id}"), 1.0)]
    if eligible.propensity_model:
        reasons.append(Reason(RESPONSE_PROPENSITY, _short(
            f"{eligible.probability:.0%} likely to accept on this channel ({eligible.propensity_model})"), 0.0))
    if sent is not None:
        channel, at = sent
        reasons.append(Reason(TRIGGERED_OFFER, _short(
            f"Sent by {_channel_name(channel)} on {at.date().isoformat()} when campaign {campaign.campaign_id}'s "
            "trigger fired; follow it up"), 0.0))
    segments: Iterable[str] = [s for s in (campaign.segment, offer.eligibility.segment) if s]
    if segments:
        reasons.append(Reason("SEGMENT_MEMBER", _short(f"In {', '.join(segments)}, the campaign's audience"), 0.0))
    return tuple(reasons)


def _channel_name(channel: int) -> str:
    try:
        return Channel(channel).name
    except ValueError:
        return str(channel)


def _out(campaign_id: str, offer_id: str, product_code: str, reason: str, description: str) -> Excluded:
    return Excluded(campaign_id=campaign_id, offer_id=offer_id, product_code=product_code, reason=reason,
                    description=_short(description))


def _short(text: str) -> str:
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1] + "…"


def decision_id_of(value: str) -> str | None:
    """The decision id in canonical form, or None when it is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def check_response(decision: Decision | None, *, decision_id: str, customer_id: str, campaign_id: str,
                   offer_id: str) -> None:
    """A response naming a decision names one about this customer that proposed this offer."""
    if decision is None:
        raise NotFound(f"decision {decision_id} not found", reason="DECISION_NOT_FOUND",
                       metadata={"decision_id": decision_id})
    if decision.customer_id != customer_id or not decision.proposed(campaign_id, offer_id):
        raise InvalidArgument([FieldViolation("response.decision_id",
                                              "must be a decision about this customer that proposed this offer")])
