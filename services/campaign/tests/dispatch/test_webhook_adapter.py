"""The webhook adapter against a real local HTTP server (uvicorn + starlette): signature, idempotency
key, retries with backoff on transient answers, no retry on a refusal, timeouts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crm_campaign.dispatch.adapters.base import OutboundMessage, Receipt, SendFailure, backoff_delay
from crm_campaign.dispatch.adapters.webhook import WebhookAdapter

SECRET = b"test-webhook-secret"


@dataclass
class Provider:
    """A channel provider: answers from a script per dispatch id, then 200; dedupes by idempotency key."""

    script: dict[str, list[int]] = field(default_factory=dict)
    delay: float = 0.0
    calls: list[tuple[str, bool]] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        stamp = request.headers["x-crm-timestamp"]
        expected = "sha256=" + hmac.new(SECRET, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        key = request.headers["idempotency-key"]
        signed = hmac.compare_digest(expected, request.headers["x-crm-signature"])
        self.calls.append((key, signed))
        if not signed:
            return Response(status_code=401)
        if self.delay:
            await asyncio.sleep(self.delay)
        queue = self.script.get(key, [])
        if queue:
            return Response(status_code=queue.pop(0))
        if key in self.accepted:
            return JSONResponse({"message_id": self.accepted[key], "duplicate": True})
        self.accepted[key] = f"msg-{len(self.accepted) + 1}"
        assert json.loads(body)["dispatch_id"] == key
        return JSONResponse({"message_id": self.accepted[key]})


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, str]]:
    state = Provider()
    app = Starlette(routes=[Route("/messages", state.handle, methods=["POST"])])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    yield state, f"http://127.0.0.1:{port}/messages"
    server.should_exit = True
    await task


def message(n: int) -> OutboundMessage:
    return OutboundMessage(dispatch_id=f"{n:032x}", campaign_id="spring", customer_id=f"c-{n}", offer_id="td-3y",
                           channel="SMS", template_id="sms-1")


def adapter(url: str, **overrides: object) -> WebhookAdapter:
    options: dict[str, object] = {"url": url, "secret": SECRET, "timeout_seconds": 2.0, "max_attempts": 4,
                                  "backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.05,
                                  "rng": random.Random(7)}
    options.update(overrides)
    return WebhookAdapter(**options)  # type: ignore[arg-type]


async def test_a_signed_message_is_accepted_and_a_repeat_answers_the_first_receipt(provider) -> None:
    state, url = provider
    sender = adapter(url)
    first = await sender.send([message(1), message(2)])
    again = await sender.send([message(1)])
    await sender.close()
    assert {o.provider_message_id for o in first if isinstance(o, Receipt)} == {"msg-1", "msg-2"}
    assert again == [Receipt(state.accepted[f"{1:032x}"], duplicate=True)]
    assert all(signed for _, signed in state.calls), "every request carries a valid HMAC signature"


async def test_transient_answers_are_retried_and_refusals_are_not(provider) -> None:
    state, url = provider
    state.script = {f"{1:032x}": [503, 429], f"{2:032x}": [400], f"{3:032x}": [500, 500, 500, 500]}
    sender = adapter(url)
    recovered, refused, exhausted = await sender.send([message(1), message(2), message(3)])
    await sender.close()
    assert isinstance(recovered, Receipt)
    assert refused == SendFailure("PROVIDER_HTTP_400", "the provider answered HTTP 400", transient=False)
    assert exhausted == SendFailure("PROVIDER_HTTP_500", "the provider answered HTTP 500", transient=True)
    attempts = [key for key, _ in state.calls]
    assert (attempts.count(f"{1:032x}"), attempts.count(f"{2:032x}"), attempts.count(f"{3:032x}")) == (3, 1, 4)


async def test_a_provider_slower_than_the_timeout_is_a_transient_failure(provider) -> None:
    state, url = provider
    state.delay = 1.0
    sender = adapter(url, timeout_seconds=0.1, max_attempts=2)
    [outcome] = await sender.send([message(1)])
    await sender.close()
    assert outcome == SendFailure("PROVIDER_TIMEOUT", "the provider did not answer in time", transient=True)


async def test_a_wrong_secret_is_refused_by_the_provider(provider) -> None:
    _, url = provider
    sender = adapter(url, secret=b"not-the-secret")
    [outcome] = await sender.send([message(1)])
    await sender.close()
    assert isinstance(outcome, SendFailure) and outcome.reason == "PROVIDER_HTTP_401" and not outcome.transient


def test_backoff_grows_exponentially_to_the_cap_with_full_jitter() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (9, 5.0)]:
        delays = [backoff_delay(attempt, base=0.5, cap=5.0, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8, "the whole range up to the ceiling is used"
