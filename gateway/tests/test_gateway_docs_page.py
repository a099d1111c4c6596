"""The API page: Swagger UI served from packaged files (no CDN), on in development, behind a
setting in production."""

from __future__ import annotations

import re

import pytest

from crm_gateway.settings import GatewaySettings
from crmkit.testing import TEST_JWT_SECRET, SigningKeyPair, write_jwks

from .conftest import running_gateway


async def test_the_page_loads_its_scripts_from_the_gateway_itself(client) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "/openapi.json" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/docs/assets/") for source in sources), sources
    assert "http://" not in html and "https://" not in html  # nothing from outside
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.content) > 0
    script = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in script.content


@pytest.mark.parametrize("name", ["../__init__.py", "redoc.standalone.js", "index.html"])
async def test_only_the_named_assets_are_served(client, name) -> None:
    response = await client.get(f"/docs/assets/{name}")
    assert response.status_code == 404


@pytest.mark.parametrize(("enabled", "status"), [(None, 404), (True, 200), (False, 404)])
async def test_production_serves_the_page_only_when_the_setting_says_so(tmp_path, enabled, status) -> None:
    settings = GatewaySettings(env="production", jwt_secret=TEST_JWT_SECRET, redis_url="",
                               jwt_jwks_url=str(write_jwks(tmp_path / "jwks.json", SigningKeyPair("ES256"))),
                               **({} if enabled is None else {"docs_enabled": enabled}))
    async with running_gateway(settings) as (_, client):
        assert (await client.get("/docs")).status_code == status
        assert (await client.get("/docs/assets/swagger-ui.css")).status_code == status
        assert (await client.get("/openapi.json")).status_code == 200
