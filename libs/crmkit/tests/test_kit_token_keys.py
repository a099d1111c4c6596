"""Tokens signed with the identity provider's key pairs (RS256, ES256) from a JWKS file or URL:
rotation by `kid`, issuer and audience, and HS256 refused in production settings."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from crmkit.auth import Role, SigningKeys, TokenVerifier, issue_token
from crmkit.errors import Unauthenticated, Unavailable
from crmkit.server import GrpcServer, ServiceBinding
from crmkit.settings import ServiceSettings
from crmkit.testing import SigningKeyPair, write_jwks

SECRET = "a-real-secret-of-forty-characters-000000"
DESCRIPTOR = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"]
EXPORT = f"/{DESCRIPTOR.full_name}/Export"


@pytest.fixture(scope="module")
def rsa() -> SigningKeyPair:
    return SigningKeyPair("RS256")


@pytest.fixture(scope="module")
def ec() -> SigningKeyPair:
    return SigningKeyPair("ES256")


def production(jwks: str, **overrides: object) -> ServiceSettings:
    return ServiceSettings(env="production", jwt_secret=SECRET, jwt_jwks_url=jwks, **overrides)


def reason_of(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        verifier.verify(token)
    return refused.value.reason


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_token_signed_with_a_published_key_gives_the_principal(tmp_path: Path, rsa, ec, algorithm) -> None:
    pair = rsa if algorithm == "RS256" else ec
    verifier = TokenVerifier.from_settings(production(str(write_jwks(tmp_path / "jwks.json", rsa, ec))))
    principal = verifier.verify_bearer(f"Bearer {pair.token(Role.RELATIONSHIP_MANAGER, subject='rm-1')}")
    assert principal.subject == "rm-1" and principal.roles == {Role.RELATIONSHIP_MANAGER}


def test_production_refuses_hs256_even_with_the_right_secret(tmp_path: Path, rsa) -> None:
    verifier = TokenVerifier.from_settings(production(str(write_jwks(tmp_path / "jwks.json", rsa))))
    assert not verifier.accepts_shared_secret
    shared = issue_token(secret=SECRET, subject="a", roles=[Role.ADMIN])
    assert reason_of(verifier, shared) == "ALGORITHM_NOT_ALLOWED"
    # Nor can the public key serve as an HMAC secret (the classic algorithm confusion).
    confused = issue_token(secret=rsa.jwk["n"], subject="a", roles=[Role.ADMIN])
    assert reason_of(verifier, confused) == "ALGORITHM_NOT_ALLOWED"


def test_production_without_a_jwks_does_not_start() -> None:
    with pytest.raises(ValueError, match="CRM_JWT_JWKS_URL is required in production"):
        TokenVerifier.from_settings(ServiceSettings(env="production", jwt_secret=SECRET))


def test_development_accepts_both_kinds(tmp_path: Path, rsa) -> None:
    settings = ServiceSettings(env="development", jwt_secret=SECRET, jwt_jwks_url=str(write_jwks(tmp_path / "j", rsa)))
    verifier = TokenVerifier.from_settings(settings)
    assert verifier.verify(issue_token(secret=SECRET, subject="dev", roles=[Role.ADMIN])).subject == "dev"
    assert verifier.verify(rsa.token(Role.ADMIN, subject="idp")).subject == "idp"


def test_wrong_issuer_audience_key_or_kid_is_refused_naming_why(tmp_path: Path, rsa, ec) -> None:
    verifier = TokenVerifier.from_settings(production(str(write_jwks(tmp_path / "jwks.json", rsa))))
    assert reason_of(verifier, rsa.token(Role.ADMIN, issuer="another-idp")) == "WRONG_ISSUER"
    assert reason_of(verifier, rsa.token(Role.ADMIN, audience="another-app")) == "WRONG_AUDIENCE"
    # Signed with an unpublished key under a published kid: the signature does not check.
    impostor = SigningKeyPair("RS256", kid=rsa.kid)
    assert reason_of(verifier, impostor.token(Role.ADMIN)) == "INVALID_TOKEN"
    # An EC key under the RSA key's kid: the header's algorithm does not match the published key.
    assert reason_of(verifier, ec.token(Role.ADMIN, kid=rsa.kid)) == "INVALID_TOKEN"
    assert reason_of(verifier, ec.token(Role.ADMIN)) == "UNKNOWN_SIGNING_KEY"


def test_rotation_a_new_kid_is_fetched_once_and_made_up_kids_do_not_refetch(tmp_path: Path, rsa, ec) -> None:
    now = [1000.0]
    jwks = write_jwks(tmp_path / "jwks.json", rsa)
    keys = SigningKeys(str(jwks), lifespan_seconds=300, cooldown_seconds=30, clock=lambda: now[0])
    verifier = TokenVerifier(secret=None, issuer="crm-platform", audience="crm", signing_keys=keys)
    assert verifier.verify(rsa.token(Role.ADMIN)).subject == "tester"
    assert keys.fetches == 1
    # The provider publishes a new key and starts signing with it.
    write_jwks(jwks, rsa, ec)
    now[0] += 31
    assert verifier.verify(ec.token(Role.ADMIN, subject="after-rotation")).subject == "after-rotation"
    assert keys.fetches == 2
    # Tokens naming keys nobody published: refused without a fetch each, within the cooldown.
    for n in range(5):
        assert reason_of(verifier, rsa.token(Role.ADMIN, kid=f"made-up-{n}")) == "UNKNOWN_SIGNING_KEY"
    assert keys.fetches == 2
    # The old key retired: once the cache expires it is no longer accepted.
    write_jwks(jwks, ec)
    now[0] += 301
    assert reason_of(verifier, rsa.token(Role.ADMIN, subject="old-key")) == "UNKNOWN_SIGNING_KEY"
    assert keys.fetches == 3


def test_an_unreadable_jwks_keeps_the_known_keys_and_without_any_is_unavailable(tmp_path: Path, rsa) -> None:
    now = [0.0]
    jwks = write_jwks(tmp_path / "jwks.json", rsa)
    keys = SigningKeys(str(jwks), lifespan_seconds=10, cooldown_seconds=0, clock=lambda: now[0])
    verifier = TokenVerifier(secret=None, issuer="crm-platform", audience="crm", signing_keys=keys)
    assert verifier.verify(rsa.token(Role.ADMIN, subject="first")).subject == "first"
    jwks.write_text("{not json")
    now[0] += 11
    assert verifier.verify(rsa.token(Role.ADMIN, subject="stale-but-known")).subject == "stale-but-known"
    missing = SigningKeys(str(tmp_path / "absent.json"))
    with pytest.raises(Unavailable):
        TokenVerifier(secret=None, issuer="crm-platform", audience="crm", signing_keys=missing).verify(
            rsa.token(Role.ADMIN))


@pytest.fixture
def jwks_server(rsa) -> Iterator[tuple[str, list[int]]]:
    """The identity provider's JWKS over HTTP on a free local port, counting the requests."""
    requests: list[int] = []
    body = json.dumps({"keys": [rsa.jwk]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", requests
    finally:
        server.shutdown()
        server.server_close()


def test_the_jwks_comes_from_a_url_and_is_cached(jwks_server, rsa) -> None:
    url, requests = jwks_server
    verifier = TokenVerifier.from_settings(production(url))
    for n in range(3):
        assert verifier.verify(rsa.token(Role.ADMIN, subject=f"user-{n}")).subject == f"user-{n}"
    assert len(requests) == 1


class Exporter(trace_service_pb2_grpc.TraceServiceServicer):
    async def Export(self, request, context):  # type: ignore[no-untyped-def]
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_a_service_in_production_serves_idp_tokens_and_refuses_hs256(tmp_path: Path, rsa, ec) -> None:
    settings = production(str(write_jwks(tmp_path / "jwks.json", rsa, ec)), host="127.0.0.1",
                          shutdown_grace_seconds=1, access_log=False)
    server = GrpcServer(settings=settings, port=0, error_domain="test.crm", readiness=lambda: _ready(), bindings=[
        ServiceBinding(descriptor=DESCRIPTOR, policy={EXPORT: frozenset({Role.ADMIN})},
                       register=lambda s: trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Exporter(), s))])
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            for pair in (rsa, ec):
                await stub.Export(trace_service_pb2.ExportTraceServiceRequest(),
                                  metadata=(("authorization", f"Bearer {pair.token(Role.ADMIN)}"),))
            shared = issue_token(secret=SECRET, subject="a", roles=[Role.ADMIN])
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Export(trace_service_pb2.ExportTraceServiceRequest(),
                                  metadata=(("authorization", f"Bearer {shared}"),))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop()


async def _ready() -> bool:
    return True


def test_a_service_signs_its_own_tokens_with_its_key_published_beside_the_idps(tmp_path: Path, rsa, ec) -> None:
    from cryptography.hazmat.primitives import serialization

    from crmkit.auth import service_token

    key_file = tmp_path / "service-key.pem"
    key_file.write_bytes(ec.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    idp = write_jwks(tmp_path / "idp.json", rsa)
    platform = write_jwks(tmp_path / "platform.json", ec)
    settings = production(f"{idp},{platform}", jwt_service_key_file=str(key_file), jwt_service_key_id=ec.kid)
    verifier = TokenVerifier.from_settings(settings)
    principal = verifier.verify(service_token(settings, subject="segment"))
    assert principal.subject == "segment" and principal.roles == {Role.SERVICE}
    assert verifier.verify(rsa.token(Role.ADMIN, subject="end-user")).subject == "end-user"  # the IdP's too
    with pytest.raises(ValueError, match="CRM_JWT_SERVICE_KEY_FILE is required in production"):
        service_token(production(str(idp)), subject="segment")
    development = ServiceSettings(env="development", jwt_secret=SECRET)
    assert TokenVerifier.from_settings(development).verify(service_token(development, subject="dev")).subject == "dev"


def test_one_unreadable_source_keeps_its_keys_and_the_others_refresh(tmp_path: Path, rsa, ec) -> None:
    now = [0.0]
    idp, platform = write_jwks(tmp_path / "idp.json", rsa), write_jwks(tmp_path / "platform.json", ec)
    keys = SigningKeys(f"{idp}, {platform}", lifespan_seconds=10, cooldown_seconds=0, clock=lambda: now[0])
    verifier = TokenVerifier(secret=None, issuer="crm-platform", audience="crm", signing_keys=keys)
    assert verifier.verify(ec.token(Role.SERVICE, subject="svc")).subject == "svc"
    idp.write_text("{broken")
    rotated = SigningKeyPair("ES256")
    write_jwks(platform, ec, rotated)
    now[0] += 11
    assert verifier.verify(rotated.token(Role.SERVICE, subject="rotated")).subject == "rotated"
    assert verifier.verify(rsa.token(Role.ADMIN, subject="idp-still-known")).subject == "idp-still-known"


def test_a_feed_followers_identity_is_signed_with_the_service_key_in_production(tmp_path: Path, ec) -> None:
    from cryptography.hazmat.primitives import serialization

    from crmkit.peer_feed import ServiceToken

    key_file = tmp_path / "service-key.pem"
    key_file.write_bytes(ec.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    settings = production(str(write_jwks(tmp_path / "platform.json", ec)), jwt_service_key_file=str(key_file),
                          jwt_service_key_id=ec.kid)
    principal = TokenVerifier.from_settings(settings).verify(ServiceToken(settings, subject="campaign")())
    assert principal.subject == "campaign" and principal.roles == {Role.SERVICE}
