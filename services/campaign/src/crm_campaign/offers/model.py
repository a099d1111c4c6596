"""Offers as the service's code sees them: plain values, no protos."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from crm_campaign.campaigns.model import Interval, Money


class ProductRiskLevel(IntEnum):
    """crm.common.v1.ProductRiskLevel: R1 (lowest) to R5."""

    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5


@dataclass(frozen=True)
class ChannelContent:
    channel: int
    template_id: str = ""
    headline: str = ""


@dataclass(frozen=True)
class OfferEligibility:
    segment: str = ""
    excluded_product_codes: tuple[str, ...] = ()


@dataclass
class Offer:
    campaign_id: str
    offer_id: str
    display_name: str
    description: str = ""
    product_code: str = ""
    product_risk_level: int = 0
    # 1 (lowest) to 100 (highest) in arbitration; 0 from a request means the default, 50.
    priority: int = 0
    expected_value: Money | None = None
    eligibility: OfferEligibility = field(default_factory=OfferEligibility)
    # Empty: every channel of the campaign.
    channels: tuple[int, ...] = ()
    contents: tuple[ChannelContent, ...] = ()
    # Open ends: the campaign's active period.
    valid_period: Interval = field(default_factory=Interval)
    conversion_points: int = 0
    # Whose propensity model scores the offer for a customer (propensityModels/{offer_type}); empty: none.
    offer_type: str = ""
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"campaigns/{self.campaign_id}/offers/{self.offer_id}"

    @property
    def etag(self) -> str:
        return str(self.version)
