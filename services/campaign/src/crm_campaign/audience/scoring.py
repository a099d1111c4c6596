"""How an offer scores for one customer, and on which channel: the one scoring function that
audience builds, triggers and next best action all use. Pure: no I/O, no gRPC, no SQL.

score = priority x expected value x probability of accepting, where the probability is

- the offer type's propensity model's calibrated probability for this customer (on the channel
  chosen, when the model reads the channel), when the builder could score the customer
  (`Propensity`: the offer type has a model and campaign holds the customer features it reads);
- otherwise the offer's observed response rate (`OfferPlan.response_rate`, smoothed by
  rates.rules), the documented fallback: no model for the offer type (or the offer names none),
  an artifact that failed its hash check, or a customer without the features. Both are the
  probability that a contacted customer accepts, so scored and unscored offers rank on one scale.

Channel choice, among the allowed channels the offer has content for and the customer can be
reached on: the only one; else, with the preference-and-response strategy, the customer's
preferred channel when it is among them, then the channel the model gives the highest
probability (when it reads the channel), then the channel with the best observed response rate
for the offer's type (`OfferPlan.channel_rates`, when the type was contacted on any of them);
else the campaign's first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from crm_campaign.campaigns.model import ChannelStrategy
from crm_campaign.dispatch.model import ChannelChoiceReason
from crm_campaign.rates.rules import best_channel

# A model that does not read the channel scores the customer once, under this key.
ANY_CHANNEL = 0


@dataclass(frozen=True)
class Propensity:
    """One customer's probabilities from one model version, by channel (or under ANY_CHANNEL)."""

    model: str
    by_channel: Mapping[int, float]

    def on(self, channel: int) -> float | None:
        return self.by_channel.get(channel, self.by_channel.get(ANY_CHANNEL))

    @property
    def reads_channel(self) -> bool:
        return ANY_CHANNEL not in self.by_channel


@dataclass(frozen=True)
class OfferScore:
    score: float
    probability: float
    # "" when the observed response rate gave the probability.
    model: str
    # The channel chosen and why; 0 / 0 when the offer has no channel to reach the customer on.
    channel: int
    channel_reason: int


def offer_score(*, priority: int, expected_value: Decimal, response_rate: float, propensity: Propensity | None,
                channels: Sequence[int], strategy: int, preferred: int,
                channel_rates: Mapping[int, float] | None = None) -> OfferScore:
    """The offer's score for the customer with the channel it would use (see the module's doc)."""
    channel, reason = choose_channel(channels, strategy=strategy, preferred=preferred, propensity=propensity,
                                     channel_rates=channel_rates)
    probability: float | None = None
    if propensity is not None:
        probability = (propensity.on(channel) if channel else
                       max(propensity.by_channel.values(), default=None))
    model = propensity.model if propensity is not None and probability is not None else ""
    if probability is None:
        probability = response_rate
    return OfferScore(score=priority * float(expected_value) * probability, probability=probability, model=model,
                      channel=channel, channel_reason=reason)


def choose_channel(channels: Sequence[int], *, strategy: int, preferred: int,
                   propensity: Propensity | None = None,
                   channel_rates: Mapping[int, float] | None = None) -> tuple[int, int]:
    """(channel, ChannelChoiceReason) among the allowed, reachable channels, in campaign order;
    (0, 0) when there is none."""
    if not channels:
        return 0, int(ChannelChoiceReason.UNSPECIFIED)
    if len(channels) == 1:
        return channels[0], int(ChannelChoiceReason.ONLY_AVAILABLE)
    if strategy != ChannelStrategy.FIXED_ORDER:  # unspecified means preference and response
        if preferred in channels:
            return preferred, int(ChannelChoiceReason.PREFERENCE)
        if propensity is not None and propensity.reads_channel:
            scored = [(p, -index, ch) for index, ch in enumerate(channels) if (p := propensity.on(ch)) is not None]
            if scored:
                return max(scored)[2], int(ChannelChoiceReason.RESPONSE_PROPENSITY)
        best = best_channel(channels, channel_rates or {})
        if best is not None:
            return best, int(ChannelChoiceReason.OBSERVED_RESPONSE_RATE)
    return channels[0], int(ChannelChoiceReason.FIXED_ORDER)


def propensity_for(propensities: Mapping[str, Propensity], offer_type: str) -> Propensity | None:
    return propensities.get(offer_type) if offer_type else None
