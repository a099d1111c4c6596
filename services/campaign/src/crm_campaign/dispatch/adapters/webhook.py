"""The webhook adapter: one signed HTTP POST per message to a channel provider's endpoint.

- **Signed**: `X-CRM-Signature: sha256=<hex>` is HMAC-SHA256 with the shared secret over
  `<X-CRM-Timestamp>.<body>`, so the provider can check origin and freshness.
- **Idempotent**: `Idempotency-Key` is the dispatch id; a provider that saw it answers the
  first message's id (the contract a provider must keep for the no-double-message rule).
- **Bounded**: each attempt has a timeout; connection errors, timeouts, 408, 429 and 5xx are
  retried up to `max_attempts` with exponential backoff and full jitter; any other 4xx is a
  permanent refusal. Exhausted retries answer a transient failure: the dispatcher tries again later.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections.abc import Sequence

import httpx

from crm_campaign.dispatch.adapters.base import OutboundMessage, Outcome, Receipt, SendFailure, backoff_delay

RETRIED_STATUSES = frozenset({408, 425, 429})


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-CRM-Signature` value for `body` sent at `timestamp`."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookAdapter:
    def __init__(self, *, url: str, secret: bytes, timeout_seconds: float, max_attempts: int = 4,
                 backoff_base_seconds: float = 0.2, backoff_cap_seconds: float = 5.0, concurrency: int = 16,
                 rng: random.Random | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._url = url
        self._secret = secret
        self._max_attempts = max_attempts
        self._base = backoff_base_seconds
        self._cap = backoff_cap_seconds
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self._limit = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), transport=transport)

    async def send(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    async def _send_one(self, message: OutboundMessage) -> Outcome:
        body = json.dumps({
            "dispatch_id": message.dispatch_id, "campaign": f"campaigns/{message.campaign_id}",
            "customer": f"customers/{message.customer_id}",
            "offer": f"campaigns/{message.campaign_id}/offers/{message.offer_id}",
            "channel": message.channel, "template_id": message.template_id, "headline": message.headline,
        }, separators=(",", ":")).encode()
        failure = SendFailure("PROVIDER_UNAVAILABLE", "not attempted", transient=True)
        async with self._limit:
            for attempt in range(1, self._max_attempts + 1):
                if attempt > 1:
                    await asyncio.sleep(backoff_delay(attempt - 1, base=self._base, cap=self._cap, rng=self._rng))
                outcome = await self._attempt(message.dispatch_id, body)
                if not isinstance(outcome, SendFailure) or not outcome.transient:
                    return outcome
                failure = outcome
        return failure

    async def _attempt(self, dispatch_id: str, body: bytes) -> Outcome:
        stamp = str(int(time.time()))
        headers = {"content-type": "application/json", "idempotency-key": dispatch_id, "x-crm-timestamp": stamp,
                   "x-crm-signature": signature(self._secret, stamp, body)}
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            return SendFailure("PROVIDER_TIMEOUT", "the provider did not answer in time", transient=True)
        except httpx.TransportError as exc:
            return SendFailure("PROVIDER_UNAVAILABLE", f"the provider could not be reached ({type(exc).__name__})",
                               transient=True)
        if response.is_success:
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            message_id = str(answer.get("message_id", "")) if isinstance(answer, dict) else ""
            return Receipt(message_id or dispatch_id, duplicate=bool(isinstance(answer, dict)
                                                                     and answer.get("duplicate")))
        transient = response.status_code >= 500 or response.status_code in RETRIED_STATUSES
        return SendFailure(f"PROVIDER_HTTP_{response.status_code}",
                           f"the provider answered HTTP {response.status_code}", transient=transient)

    async def close(self) -> None:
        await self._client.aclose()
