"""Observed response rates, smoothed: the probability of accepting that scoring falls back on when
no propensity model scores the customer (audience.scoring). Pure: no I/O.

What is counted. A contact is a dispatch that went out (SENT or DELIVERED); it is accepted when
the customer recorded an ACCEPTED response to that campaign's offer (RecordResponse) or a
conversion attributed to it (RecordConversion). That is the event the propensity models learn
(contacts whose outcome is ACCEPTED), so an observed rate and a model's probability are the same
quantity, P(accepts | contacted), and arbitration compares them on one scale.

Smoothing. Each rate is the mean of a Beta posterior, (accepted + w x centre) / (contacts + w):
a Beta(w x centre, w x (1 - centre)) prior worth `w` pseudo-contacts, shrinking small samples
towards a centre one level up:

- an offer type (all offers that name it, across campaigns): centred on the bank-wide default;
- an offer: centred on its type's rate (an offer without a type: on the bank-wide default);
- an offer type on a channel: centred on the type's rate.

So a new offer starts at its type's rate (or the default), 0 of 3 is not 0, 3 of 3 is not 1, and
a few hundred contacts outweigh the prior. The defaults, 5 % worth 20 pseudo-contacts (one
pseudo-acceptance), are settings (`CRM_CAMPAIGN_DEFAULT_RESPONSE_RATE`,
`CRM_CAMPAIGN_RESPONSE_RATE_PRIOR_WEIGHT`): a bank sets the default to its usual campaign response.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_RATE = 0.05
DEFAULT_PRIOR_WEIGHT = 20.0


@dataclass(frozen=True)
class Prior:
    """The bank-wide default response rate and how many pseudo-contacts it is worth."""

    rate: float = DEFAULT_RATE
    weight: float = DEFAULT_PRIOR_WEIGHT

    def __post_init__(self) -> None:
        if not 0 < self.rate < 1:
            raise ValueError(f"the default response rate must be between 0 and 1 (exclusive), not {self.rate}")
        if self.weight <= 0:
            raise ValueError(f"the prior weight must be positive, not {self.weight}")


@dataclass(frozen=True)
class Tally:
    """Contacts and acceptances of one offer of one campaign on one channel (one aggregate row)."""

    campaign_id: str
    offer_id: str
    offer_type: str
    channel: int
    contacts: int
    accepted: int


@dataclass(frozen=True)
class Counts:
    contacts: int = 0
    accepted: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.contacts + other.contacts, self.accepted + other.accepted)


def smoothed(counts: Counts, *, centre: float, weight: float) -> float:
    """The Beta posterior mean: `counts` shrunk towards `centre` with `weight` pseudo-contacts."""
    return (counts.accepted + weight * centre) / (counts.contacts + weight)


@dataclass(frozen=True)
class ObservedRates:
    """What has been observed, by offer, offer type and (offer type, channel), with the prior."""

    prior: Prior = Prior()
    by_offer: Mapping[tuple[str, str], Counts] = field(default_factory=dict)
    by_type: Mapping[str, Counts] = field(default_factory=dict)
    by_type_channel: Mapping[tuple[str, int], Counts] = field(default_factory=dict)

    def type_rate(self, offer_type: str) -> float:
        """The offer type's smoothed rate; the default for no type or a type never contacted."""
        if not offer_type:
            return self.prior.rate
        return smoothed(self.by_type.get(offer_type, Counts()), centre=self.prior.rate, weight=self.prior.weight)

    def offer_rate(self, campaign_id: str, offer_id: str, offer_type: str) -> float:
        """The offer's smoothed rate, centred on its type's."""
        return smoothed(self.by_offer.get((campaign_id, offer_id), Counts()), centre=self.type_rate(offer_type),
                        weight=self.prior.weight)

    def channel_rates(self, offer_type: str, channels: Iterable[int]) -> dict[int, float]:
        """The offer type's smoothed rate on each of `channels`; empty when the type has no type or
        was never contacted on any of them (nothing observed to choose by)."""
        wanted = list(channels)
        if not offer_type or not any((offer_type, ch) in self.by_type_channel for ch in wanted):
            return {}
        centre = self.type_rate(offer_type)
        return {ch: smoothed(self.by_type_channel.get((offer_type, ch), Counts()), centre=centre,
                             weight=self.prior.weight) for ch in wanted}


def observed(tallies: Iterable[Tally], prior: Prior) -> ObservedRates:
    """The rates from the aggregate's rows (any grouping finer than offer x channel adds up)."""
    by_offer: dict[tuple[str, str], Counts] = defaultdict(Counts)
    by_type: dict[str, Counts] = defaultdict(Counts)
    by_type_channel: dict[tuple[str, int], Counts] = defaultdict(Counts)
    for t in tallies:
        counts = Counts(t.contacts, t.accepted)
        by_offer[(t.campaign_id, t.offer_id)] += counts
        if t.offer_type:
            by_type[t.offer_type] += counts
            by_type_channel[(t.offer_type, t.channel)] += counts
    return ObservedRates(prior=prior, by_offer=dict(by_offer), by_type=dict(by_type),
                         by_type_channel=dict(by_type_channel))


def best_channel(channels: Sequence[int], rates: Mapping[int, float]) -> int | None:
    """The channel with the best rate, the earlier in `channels` on a tie; None without rates."""
    scored = [(rates[ch], -index, ch) for index, ch in enumerate(channels) if ch in rates]
    return max(scored)[2] if scored else None
