"""Responses and conversions as the service's code sees them: plain values, no protos."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from crm_campaign.campaigns.model import Money

# The attribution window when a campaign sets none.
DEFAULT_ATTRIBUTION_WINDOW = timedelta(days=30)


class ResponseType(IntEnum):
    UNSPECIFIED = 0
    SHOWN = 1
    OPENED = 2
    CLICKED = 3
    INTERESTED = 4
    ACCEPTED = 5
    DECLINED = 6
    OPTED_OUT = 7


@dataclass(frozen=True)
class OfferResponse:
    campaign_id: str
    response_id: str
    customer_id: str
    offer_id: str
    channel: int
    type: int
    response_time: datetime | None
    dispatch_id: str = ""
    decision_id: str = ""
    recorder: str = ""
    created_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"campaigns/{self.campaign_id}/responses/{self.response_id}"


@dataclass(frozen=True)
class Conversion:
    customer_id: str
    source_reference: str
    conversion_time: datetime | None
    # Known before attribution when the caller names the offer; else found by `product_code`.
    campaign_id: str = ""
    offer_id: str = ""
    product_code: str = ""
    amount: Money | None = None
    value: Money | None = None
    conversion_id: str = ""
    control_group: bool = False
    dispatch_id: str = ""
    points_awarded: int = 0
    created_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"campaigns/{self.campaign_id}/conversions/{self.conversion_id}"


@dataclass(frozen=True)
class Contact:
    """Something a conversion can be attributed to: a sent dispatch to a target customer, or the
    assignment of a control customer to the offer, with the campaign's attribution window."""

    campaign_id: str
    offer_id: str
    product_code: str
    control_group: bool
    contact_at: datetime
    window: timedelta
    dispatch_id: str = ""
    conversion_points: int = 0
    expected_value: Money | None = None
