"""Dispatches as the service's code sees them: plain values, no protos.

A dispatch is one offer sent (or left unsent) to one customer on one channel. Its id is derived
from (campaign, customer, channel), so whatever queues it twice queues the same row, and the
adapter that sends it twice sends the same idempotency key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum


class DispatchState(IntEnum):
    UNSPECIFIED = 0
    QUEUED = 1
    SENT = 2
    DELIVERED = 3
    FAILED = 4
    SUPPRESSED = 5
    CANCELLED = 6
    SENDING = 7


class SuppressionReason(IntEnum):
    UNSPECIFIED = 0
    INELIGIBLE = 1
    DO_NOT_CONTACT = 2
    NO_CONSENT = 3
    UNSUITABLE = 4
    SUITABILITY_UNKNOWN = 5
    FREQUENCY_CAP = 6
    QUIET_HOURS = 7
    NO_REACHABLE_CHANNEL = 8
    ARBITRATION_LOST = 9
    MAX_CONTACTS = 10
    OPEN_COMPLAINT = 11


class ChannelChoiceReason(IntEnum):
    UNSPECIFIED = 0
    PREFERENCE = 1
    RESPONSE_HISTORY = 2
    FIXED_ORDER = 3
    ONLY_AVAILABLE = 4
    INBOUND = 5
    RESPONSE_PROPENSITY = 6
    OBSERVED_RESPONSE_RATE = 7


# States a dispatch never leaves.
FINAL = frozenset({DispatchState.SENT, DispatchState.DELIVERED, DispatchState.FAILED, DispatchState.SUPPRESSED,
                   DispatchState.CANCELLED})


def dispatch_id(campaign_id: str, customer_id: str, channel: int) -> str:
    """The dispatch's id: the same (campaign, customer, channel) always gives the same 32 hex characters."""
    return hashlib.sha256(f"{campaign_id}\x1f{customer_id}\x1f{int(channel)}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DispatchError:
    """Why the last attempt failed or the dispatch was suppressed: an ErrorInfo reason and a message."""

    reason: str
    message: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dispatch:
    campaign_id: str
    dispatch_id: str
    customer_id: str
    offer_id: str
    channel: int
    state: DispatchState
    channel_reason: int = 0
    template_id: str = ""
    headline: str = ""
    attempt_count: int = 0
    provider_message_id: str = ""
    last_error: DispatchError | None = None
    suppression_reason: SuppressionReason = SuppressionReason.UNSPECIFIED
    not_before_at: datetime | None = None
    propensity_model: str = ""
    created_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"campaigns/{self.campaign_id}/dispatches/{self.dispatch_id}"


@dataclass(frozen=True)
class Planned:
    """One row the audience build hands to dispatch: a target to queue, or a suppressed customer
    to record with the reason (and, for arbitration, the winner) so ListDispatches can show why."""

    customer_id: str
    offer_id: str
    channel: int
    channel_reason: int = 0
    template_id: str = ""
    headline: str = ""
    suppression_reason: SuppressionReason = SuppressionReason.UNSPECIFIED
    error: DispatchError | None = None
    not_before_at: datetime | None = None
    # The offer's arbitration score for the customer, and the propensity model it used ("" none).
    arbitration_score: float | None = None
    propensity_model: str = ""
