"""Audience members as the service's code sees them: who a build put in which group, with what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from crm_campaign.dispatch.model import DispatchError, SuppressionReason


class AudienceGroup(IntEnum):
    TARGET = 1
    CONTROL = 2
    SUPPRESSED = 3


@dataclass(frozen=True)
class Eligible:
    """A customer who passed every check, with the offer and channel chosen for them."""

    customer_id: str
    offer_id: str
    channel: int
    channel_reason: int = 0
    template_id: str = ""
    headline: str = ""
    # The segment the customer came in through (the campaign's, or the offer's eligibility segment).
    segment: str = ""
    not_before_at: datetime | None = None
    # The offer's arbitration score, its probability of acceptance, and the propensity model that
    # gave it ("": the observed response rate did).
    score: float = 0.0
    probability: float = 1.0
    propensity_model: str = ""


@dataclass(frozen=True)
class Suppressed:
    """A customer a check left out, under the first check that did."""

    customer_id: str
    reason: SuppressionReason
    offer_id: str = ""
    channel: int = 0
    segment: str = ""
    error: DispatchError | None = None


@dataclass(frozen=True)
class Member:
    campaign_id: str
    customer_id: str
    group: AudienceGroup
    offer_id: str
    channel: int
    segment: str
    suppression_reason: SuppressionReason
    created_at: datetime | None = None
