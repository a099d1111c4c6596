"""Next-best-action answers as the service's code sees them: plain values, no protos."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from crm_campaign.campaigns.model import Money
from crm_campaign.propensity.model import LatestVersion


@dataclass(frozen=True)
class Reason:
    """Why an offer is proposed: an UPPER_SNAKE code, a staff-facing sentence, its share of the score."""

    code: str
    description: str
    weight: float


@dataclass(frozen=True)
class Action:
    rank: int
    campaign_id: str
    offer_id: str
    product_code: str
    headline: str
    template_id: str
    score: float
    expected_value: Money | None
    reasons: tuple[Reason, ...]
    # The propensity model's probability of acceptance in `score`, and the model; 0 and "" when
    # the offer's observed response rate was used instead.
    propensity: float = 0.0
    propensity_model: str = ""


@dataclass(frozen=True)
class Excluded:
    """An offer left out, under the first check that left it out."""

    campaign_id: str
    offer_id: str
    product_code: str
    reason: str
    description: str


@dataclass(frozen=True)
class Decision:
    decision_id: str
    customer_id: str
    channel: int
    requester: str
    actions: tuple[Action, ...]
    excluded: tuple[Excluded, ...]
    degraded_reasons: tuple[str, ...] = ()
    created_at: datetime | None = None

    @property
    def degraded(self) -> bool:
        return bool(self.degraded_reasons)

    def proposed(self, campaign_id: str, offer_id: str) -> bool:
        return any((a.campaign_id, a.offer_id) == (campaign_id, offer_id) for a in self.actions)


@dataclass(frozen=True)
class CustomerFacts:
    """What campaign knows about one customer now, from its read models and its own records."""

    customer_id: str
    known: bool
    relationship_manager_id: str = ""
    segments: frozenset[str] = frozenset()
    held_products: frozenset[str] = frozenset()
    do_not_contact: bool = False
    open_complaint: bool = False
    consented_channels: frozenset[int] = frozenset()
    preferred_channel: int = 0
    # (campaign id, channel, when) of every contact within the caps' horizon: dispatches planned
    # or made, and offers shown on inbound channels.
    contacts: tuple[tuple[str, int, datetime], ...] = ()
    # Channels the customer opted out of by a response (ahead of profile's consent feed).
    opted_out_channels: frozenset[int] = frozenset()
    # Campaigns whose offer the customer declined.
    declined_campaigns: frozenset[str] = frozenset()
    # Other campaigns' pending or recently sent dispatches: (campaign id, offer id, score, sent).
    dispatched: tuple[tuple[str, str, float, bool], ...] = field(default=())
    # Offers of running triggered campaigns the customer was sent (or is about to be) within the
    # follow-up window: (campaign id, offer id, channel, when). The counter follows them up.
    triggered: tuple[tuple[str, str, int, datetime], ...] = ()
    # The customer's modelling features from profile (propensity.customer_features); None: none held.
    features: Mapping[str, float | str | bool] | None = None
    # The newest propensity model of every offer type that has one.
    models: tuple[LatestVersion, ...] = ()

    @property
    def triggered_campaigns(self) -> frozenset[str]:
        return frozenset(campaign_id for campaign_id, _, _, _ in self.triggered)
