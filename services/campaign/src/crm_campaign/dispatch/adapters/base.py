"""The channel adapter interface: send a batch of messages, answer one outcome per message.

An adapter must be idempotent by `OutboundMessage.dispatch_id`: the dispatcher records its intent
(SENDING) before calling `send` and the outcome after, so a crash in between hands the same
message over again, and the adapter (or the provider behind it) must drop the duplicate and
answer the receipt of the first hand-over.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OutboundMessage:
    """What a channel needs to send one offer to one customer: ids only, no personal data (the
    channel platform fills in the customer's details from the template)."""

    dispatch_id: str
    campaign_id: str
    customer_id: str
    offer_id: str
    channel: str
    template_id: str
    headline: str = ""


@dataclass(frozen=True)
class Receipt:
    """The channel accepted the message; `duplicate` when it had already (the first receipt's id)."""

    provider_message_id: str
    duplicate: bool = False


@dataclass(frozen=True)
class SendFailure:
    """The channel refused or could not be reached. `transient` failures are retried later."""

    reason: str
    message: str
    transient: bool


Outcome = Receipt | SendFailure


class ChannelAdapter(Protocol):
    """One way out to one or more channels."""

    async def send(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        """One outcome per message, in order. Never raises for a message's failure."""
        ...

    async def close(self) -> None:
        ...


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `attempt` (1 for the first retry): "full jitter", uniform
    between 0 and min(cap, base * 2^(attempt-1)), so that many failing senders do not retry in step."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0, ceiling)
