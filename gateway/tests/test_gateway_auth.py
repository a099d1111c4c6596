"""Authentication and per-route roles at the gateway: refused before any service is called."""

from __future__ import annotations

import time

import jwt
import pytest

from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET, token

PROBLEM = "application/problem+json"
CUSTOMER = "/v1/customers/C0001"


def expired_token() -> str:
    now = int(time.time())
    claims = {"sub": "tester", "roles": ["admin"], "iss": "crm-platform", "aud": "crm",
              "iat": now - 7200, "exp": now - 3600}
    return jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")


async def test_no_token_is_a_401_with_a_bearer_challenge(client) -> None:
    response = await client.get(CUSTOMER)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == 'Bearer realm="crm"'
    problem = response.json()
    assert problem["status"] == 401
    assert problem["type"].endswith(":unauthenticated")
    assert problem["reason"] == "MISSING_TOKEN"


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("Bearer not-a-jwt", "INVALID_TOKEN"),
        (f"Bearer {jwt.encode({'sub': 'x'}, 'another-secret-of-sufficient-length-0123456789')}", "INVALID_TOKEN"),
        (f"Bearer {expired_token()}", "TOKEN_EXPIRED"),
    ],
    ids=["garbage", "wrong-signature", "expired"],
)
async def test_bad_token_is_a_401_invalid_token(client, authorization, reason) -> None:
    response = await client.get(CUSTOMER, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="crm", error="invalid_token"'
    assert response.json()["reason"] == reason


def signed(*, issued: int, lifetime: int, **overrides: object) -> str:
    now = int(time.time())
    claims = {"sub": "tester", "roles": ["admin"], "iss": "crm-platform", "aud": "crm",
              "iat": now + issued, "exp": now + issued + lifetime, **overrides}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, TEST_JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (signed(issued=0, lifetime=10 * 24 * 3600), "TOKEN_LIFETIME_TOO_LONG"),
        (signed(issued=0, lifetime=3600, iat=None), "TOKEN_CLAIM_MISSING"),
        (signed(issued=3600, lifetime=3600), "TOKEN_NOT_YET_VALID"),
    ],
    ids=["valid-for-ten-days", "no-iat", "issued-in-an-hour"],
)
async def test_token_beyond_the_lifetime_cap_is_a_401_naming_why(client, token, reason) -> None:
    response = await client.get(CUSTOMER, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == 'Bearer realm="crm", error="invalid_token"'
    assert response.json()["reason"] == reason


async def test_other_authorization_scheme_is_a_401(client) -> None:
    response = await client.get(CUSTOMER, headers={"Authorization": f"Basic {token(Role.ADMIN)}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["reason"] == "MALFORMED_AUTHORIZATION"


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", CUSTOMER, Role.MARKETER),
        ("GET", CUSTOMER, Role.AUDITOR),
        ("GET", CUSTOMER, Role.SERVICE),
        ("POST", "/v1/customers", Role.ANALYST),
        ("POST", "/v1/customers", Role.RISK_OFFICER),
    ],
)
async def test_role_not_allowed_on_the_route_is_a_403(client, headers, new_customer, method, path, role) -> None:
    sent = new_customer()
    response = await client.request(method, path, headers=headers(role), json=sent if method == "POST" else None)
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    assert "www-authenticate" not in response.headers
    problem = response.json()
    assert problem["type"].endswith(":permission-denied")
    assert problem["reason"] == "ROLE_NOT_ALLOWED"
    if method == "POST":
        missing = await client.get(f"/v1/customers/{sent['customer_id']}", headers=headers(Role.ADMIN))
        assert missing.status_code == 404


async def test_token_without_any_platform_role_is_a_403(client) -> None:
    now = int(time.time())
    cashier = jwt.encode({"sub": "teller-1", "roles": ["cashier"], "iss": "crm-platform", "aud": "crm",
                          "iat": now, "exp": now + 600}, TEST_JWT_SECRET, algorithm="HS256")
    response = await client.get(CUSTOMER, headers={"Authorization": f"Bearer {cashier}"})
    assert response.status_code == 403
    assert response.json()["reason"] == "NO_ROLE"


async def test_anonymous_caller_gets_401_before_any_check_of_the_body(client) -> None:
    response = await client.post("/v1/customers", json={"nickname": 1})
    assert response.status_code == 401
    assert "invalid_params" not in response.json()


async def test_in_production_idp_tokens_pass_the_gateway_and_hs256_is_refused(profile_address, tmp_path) -> None:
    from crm_gateway.settings import GatewaySettings
    from crmkit.testing import SigningKeyPair, write_jwks

    from .conftest import running_gateway

    pairs = SigningKeyPair("RS256"), SigningKeyPair("ES256")
    settings = GatewaySettings(env="production", jwt_secret=TEST_JWT_SECRET, profile_target=profile_address,
                               jwt_jwks_url=str(write_jwks(tmp_path / "jwks.json", *pairs)))
    async with running_gateway(settings) as (_, client):
        shared = await client.get(CUSTOMER, headers={"Authorization": f"Bearer {token(Role.ADMIN)}"})
        assert shared.status_code == 401
        assert shared.json()["reason"] == "ALGORITHM_NOT_ALLOWED"
        for pair in pairs:
            # Past the gateway's check: the roles are checked next (a marketer may not read here).
            refused = await client.get(CUSTOMER, headers={"Authorization": f"Bearer {pair.token(Role.MARKETER)}"})
            assert refused.status_code == 403, refused.text
            assert refused.json()["reason"] == "ROLE_NOT_ALLOWED"
        other = await client.get(CUSTOMER, headers={
            "Authorization": f"Bearer {pairs[0].token(Role.ADMIN, issuer='another-idp')}"})
        assert other.status_code == 401
        assert other.json()["reason"] == "WRONG_ISSUER"
