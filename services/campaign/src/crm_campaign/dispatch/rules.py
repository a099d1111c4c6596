"""Pure dispatch decisions: what a failed attempt leads to, and the ListDispatches filter's shape."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.adapters.base import SendFailure, backoff_delay
from crm_campaign.dispatch.model import DispatchState
from crmkit.validation import Violations

# Send attempts per dispatch (the contract's "at most 5 times").
MAX_ATTEMPTS = 5


def retry_at(failure: SendFailure, *, attempt_count: int, now: datetime, base: timedelta, cap: timedelta,
             rng: random.Random | None = None) -> datetime | None:
    """When to try a failed dispatch again, or None when it has failed for good (a permanent
    refusal, or the last attempt)."""
    if not failure.transient or attempt_count >= MAX_ATTEMPTS:
        return None
    delay = backoff_delay(attempt_count, base=base.total_seconds(), cap=cap.total_seconds(), rng=rng)
    return now + timedelta(seconds=delay)


def validate_list_filter(*, all_campaigns: bool, customer_id: str, channel: int, state: int) -> None:
    v = Violations()
    if all_campaigns:
        v.required(customer_id, "customer")
    v.enum(channel, "channel", {int(c) for c in Channel}, "Channel")
    v.enum(state, "state", {int(s) for s in DispatchState}, "DispatchState")
    v.raise_if_any()
