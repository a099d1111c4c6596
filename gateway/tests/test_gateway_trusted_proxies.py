"""Behind a load balancer the per-address limits must see the caller's address: uvicorn's proxy
middleware, as the gateway configures it, believes X-Forwarded-For only from the trusted proxies."""

from __future__ import annotations

from typing import Any

import httpx
import pydantic
import pytest

from crm_gateway.__main__ import server_config
from crm_gateway.settings import GatewaySettings
from crmkit.testing import TEST_JWT_SECRET


async def client_address(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering with the client address it was given."""
    host = (scope.get("client") or ("", 0))[0].encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": host})


async def seen(trusted: str, *, peer: str, forwarded: str) -> str:
    settings = GatewaySettings(env="test", jwt_secret=TEST_JWT_SECRET, trusted_proxies=trusted)
    config = server_config(settings, client_address)
    config.load()  # wraps the app in the middlewares the server runs it with
    transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return (await client.get("/", headers={"X-Forwarded-For": forwarded})).text


async def test_the_forwarded_address_counts_only_from_a_trusted_proxy() -> None:
    assert await seen("10.0.0.0/8", peer="10.2.3.4", forwarded="203.0.113.7") == "203.0.113.7"
    assert await seen("10.0.0.0/8", peer="198.51.100.9", forwarded="203.0.113.7") == "198.51.100.9"
    assert await seen("", peer="127.0.0.1", forwarded="203.0.113.7") == "127.0.0.1"  # none trusted


@pytest.mark.parametrize("bad", ["*", "10.0.0.0/8, ingress.local", "300.1.1.1"])
def test_a_proxy_list_that_is_not_addresses_or_networks_is_refused_naming_the_setting(
        bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATEWAY_TRUSTED_PROXIES", bad)
    with pytest.raises(pydantic.ValidationError) as raised:
        GatewaySettings(env="test", jwt_secret=TEST_JWT_SECRET)
    assert "CRM_GATEWAY_TRUSTED_PROXIES" in str(raised.value) and "not an IP address or network" in str(raised.value)
