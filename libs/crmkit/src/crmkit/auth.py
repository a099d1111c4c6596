"""Caller identity: a principal and roles from a verified JWT.

Channel applications authenticate end users at the gateway; the gateway forwards the bearer
token in the `authorization` metadata of every gRPC call, and each service verifies it again
(no service trusts its network). Internal teams' tools call services with their own tokens.

Two kinds of signature are accepted, chosen by the token's `alg` header:

- RS256 or ES256, verified with the bank identity provider's public keys from a JWKS document
  (`CRM_JWT_JWKS_URL`: an https URL or a file path), the key picked by the token's `kid`. A `kid`
  the cached document does not list makes one refetch (the provider rotated its keys), at most
  once per cooldown, so that tokens with made-up `kid`s cannot turn every call into a fetch.
- HS256 with the shared `CRM_JWT_SECRET`: `make run`, tests and development only. In production
  settings a shared-secret token is refused (ALGORITHM_NOT_ALLOWED), whoever signed it, and the
  verifier cannot be built without a JWKS.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

from crmkit.errors import PermissionDenied, Unauthenticated, Unavailable
from crmkit.logs import get_logger

if TYPE_CHECKING:
    from crmkit.settings import ServiceSettings

ALGORITHM = "HS256"  # the shared-secret algorithm: development and tests only
# Signatures with the identity provider's key pairs, the only ones accepted in production.
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256"})
# The longest a token may live (`exp - iat`), unless settings say otherwise: a leaked token is
# worth no more than a day. `crm token` mints at most this.
MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600
# Clocks of the identity provider and of each pod disagree by a few seconds.
CLOCK_SKEW_SECONDS = 30


class Role(StrEnum):
    CHANNEL_APP = "channel_app"
    RELATIONSHIP_MANAGER = "relationship_manager"
    MARKETER = "marketer"
    ANALYST = "analyst"
    RISK_OFFICER = "risk_officer"
    AUDITOR = "auditor"
    ADMIN = "admin"
    # Other services of the platform calling with their own identity (change feeds, checks).
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: `subject` is the JWT `sub` (an employee id, an app id, or a service)."""

    subject: str
    roles: frozenset[Role]
    token: str = ""

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    @property
    def is_relationship_manager_only(self) -> bool:
        """An RM without a broader role sees only their own book."""
        broader = {Role.ADMIN, Role.ANALYST, Role.RISK_OFFICER, Role.AUDITOR, Role.MARKETER,
                   Role.CHANNEL_APP, Role.SERVICE}
        return Role.RELATIONSHIP_MANAGER in self.roles and self.roles.isdisjoint(broader)


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("crm_principal", default=None)


def current_principal() -> Principal:
    """The caller of the RPC being served; the server interceptor sets it before the handler runs."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no caller identity in this context", reason="MISSING_IDENTITY")
    return principal


def bound_principal() -> Principal | None:
    """The caller of the RPC being served, or None outside a call (background work)."""
    return _current.get()


def bind_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


_method: contextvars.ContextVar[str] = contextvars.ContextVar("crm_method", default="")


def current_method() -> str:
    """The full gRPC method being served ("" outside a call: background work, start-up)."""
    return _method.get()


def bind_method(method: str) -> contextvars.Token[str]:
    return _method.set(method)


def reset_method(token: contextvars.Token[str]) -> None:
    _method.reset(token)


log = get_logger("crm.auth")


class SigningKeys:
    """The identity provider's public keys: a JWKS document read from `source` (an http(s) URL
    or a file path; several, comma-separated, are merged: the bank's identity provider and the
    platform's own service keys), kept for `lifespan_seconds`, by `kid`.

    `key(kid)` answers from the cache; an unknown `kid` refetches once, unless a fetch happened
    within `cooldown_seconds` (a rotation publishes the new key before tokens are signed with it,
    so one refetch finds it; a made-up `kid` cannot force a fetch per call). When a refetch fails
    the keys already known keep serving; with none known at all the caller gets UNAVAILABLE
    (the token may be good: it cannot be checked right now). Fetches block the caller for at
    most `timeout_seconds`; they happen once per lifespan and on rotation, not per call (verified
    tokens are cached by the verifier).
    """

    def __init__(self, source: str, *, lifespan_seconds: float = 300.0, cooldown_seconds: float = 30.0,
                 timeout_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.sources = [part.strip() for part in source.split(",") if part.strip()]
        if not self.sources:
            raise ValueError("a JWKS source (URL or file path) is required")
        self.source = source
        self._by_source: dict[str, dict[str, jwt.PyJWK]] = {}
        self._lifespan = lifespan_seconds
        self._cooldown = cooldown_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = threading.Lock()
        self.fetches = 0

    def key(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            now = self._clock()
            expired = self._fetched_at is None or now - self._fetched_at >= self._lifespan
            unknown = kid not in self._keys
            cooled = self._tried_at is None or now - self._tried_at >= self._cooldown
            if (expired or unknown) and cooled:
                self._refresh(now)
            if not self._keys and self._fetched_at is None:
                raise Unavailable("the identity provider's signing keys cannot be read right now",
                                  reason="SIGNING_KEYS_UNAVAILABLE")
            return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        """Read every source; one that fails keeps the keys it gave last time."""
        self._tried_at = now
        self.fetches += 1
        fresh = False
        for source in self.sources:
            try:
                self._by_source[source] = self._keys_of(self._read(source))
                fresh = True
            except Exception as exc:  # unreachable, unreadable or malformed: keep what we had
                log.warning("jwks_fetch_failed", error_type=type(exc).__name__,
                            known_keys=len(self._by_source.get(source, {})))
        self._keys = {kid: key for keys in self._by_source.values() for kid, key in keys.items()}
        if fresh:
            self._fetched_at = now

    @staticmethod
    def _keys_of(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
        keys = {}
        for entry in document.get("keys", []):
            if not isinstance(entry, dict) or not entry.get("kid") or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWKError:  # a key type this platform does not verify with: skipped
                continue
            if key.algorithm_name in ASYMMETRIC_ALGORITHMS:
                keys[str(entry["kid"])] = key
        return keys

    def _read(self, source: str) -> dict[str, Any]:
        if source.startswith(("https://", "http://")):
            request = urllib.request.Request(source, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked here
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                raw = response.read(1024 * 1024)
        else:
            raw = Path(source.removeprefix("file://")).read_bytes()
        document = json.loads(raw)
        if not isinstance(document, dict):
            raise ValueError("a JWKS is a JSON object with a `keys` list")
        return document


class TokenVerifier:
    """Verifies JWTs: signature, expiry, issuer, audience, lifetime and known roles.

    RS256/ES256 tokens are checked with `signing_keys` (the identity provider's JWKS); HS256
    tokens with `secret`, and only when a secret is given: production builds the verifier
    without one (`from_settings`), so a shared-secret token is refused there. A token must say
    when it was issued (`iat`), not in the future beyond the clock skew, and must not live longer
    than `max_lifetime_seconds` (`exp - iat`): a correctly signed token valid for days is refused,
    whoever minted it.

    A channel application sends the same token with every call for its lifetime, so verified
    tokens are remembered (bounded, until they expire): the signature check and claim parsing
    happen once per token, not once per call. Expiry is still checked on every use.
    """

    CACHE_SIZE = 10_000

    def __init__(self, *, secret: str | None, issuer: str, audience: str,
                 max_lifetime_seconds: int = MAX_TOKEN_LIFETIME_SECONDS,
                 signing_keys: SigningKeys | None = None) -> None:
        if max_lifetime_seconds <= 0:
            raise ValueError("max_lifetime_seconds must be positive")
        if not secret and signing_keys is None:
            raise ValueError("a verifier needs signing keys (a JWKS) or, outside production, a secret")
        self._secret = secret or None
        self._signing_keys = signing_keys
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime_seconds
        self._verified: dict[str, tuple[Principal, float]] = {}

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TokenVerifier:
        """The verifier every service and the gateway build, so that they all agree.

        Production (`CRM_ENV=production`) verifies only with the JWKS (`CRM_JWT_JWKS_URL`, required
        there); elsewhere the shared secret verifies HS256 tokens too (`make run`, tests)."""
        source = settings.jwt_jwks_url
        if not settings.is_development and not source:
            raise ValueError("CRM_JWT_JWKS_URL is required in production: HS256 tokens signed with "
                             "CRM_JWT_SECRET are refused there")
        keys = SigningKeys(source, lifespan_seconds=settings.jwt_jwks_cache_seconds,
                           cooldown_seconds=settings.jwt_jwks_refetch_cooldown_seconds) if source else None
        return cls(secret=settings.jwt_secret.get_secret_value() if settings.is_development else None,
                   issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                   max_lifetime_seconds=settings.jwt_max_token_lifetime_seconds, signing_keys=keys)

    @property
    def accepts_shared_secret(self) -> bool:
        return self._secret is not None

    def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires_at = cached
            if time.time() < expires_at:
                return principal
            del self._verified[token]
        principal, expires_at = self._verify_uncached(token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first: dicts keep insertion order
        self._verified[token] = (principal, expires_at)
        return principal

    def _key_for(self, token: str) -> tuple[Any, str]:
        """The key and the one algorithm this token may be verified with, from its header."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("token is not valid", reason="INVALID_TOKEN") from exc
        algorithm = header.get("alg")
        if algorithm == ALGORITHM and self._secret is not None:
            return self._secret, ALGORITHM
        if algorithm in ASYMMETRIC_ALGORITHMS and self._signing_keys is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise Unauthenticated("token names no signing key ('kid')", reason="TOKEN_CLAIM_MISSING")
            key = self._signing_keys.key(kid)
            if key is None:
                raise Unauthenticated("token is signed with a key the identity provider does not publish",
                                      reason="UNKNOWN_SIGNING_KEY")
            return key, str(algorithm)
        raise Unauthenticated(f"tokens signed with {str(algorithm)[:16]!r} are not accepted here",
                              reason="ALGORITHM_NOT_ALLOWED")

    def _verify_uncached(self, token: str) -> tuple[Principal, float]:
        key, algorithm = self._key_for(token)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                leeway=CLOCK_SKEW_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token has no '{exc.claim}' claim", reason="TOKEN_CLAIM_MISSING") from exc
        except jwt.ImmatureSignatureError as exc:  # `iat` (or `nbf`) ahead of the clock beyond the skew
            raise Unauthenticated("token is issued in the future", reason="TOKEN_NOT_YET_VALID") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthenticated("token is issued by another issuer", reason="WRONG_ISSUER") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthenticated("token is meant for another audience", reason="WRONG_AUDIENCE") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("token is not valid", reason="INVALID_TOKEN") from exc
        if float(claims["exp"]) - float(claims["iat"]) > self._max_lifetime:
            raise Unauthenticated(f"token lifetime (exp - iat) exceeds {self._max_lifetime} seconds",
                                  reason="TOKEN_LIFETIME_TOO_LONG")
        raw_roles = claims.get("roles", [])
        if not isinstance(raw_roles, list):
            raise Unauthenticated("token roles must be a list", reason="INVALID_TOKEN")
        known = {r.value for r in Role}
        roles = frozenset(Role(r) for r in raw_roles if r in known)
        if not roles:
            raise PermissionDenied("token carries no platform role", reason="NO_ROLE")
        return Principal(subject=str(claims["sub"]), roles=roles, token=token), float(claims["exp"])

    def verify_bearer(self, header: str | None) -> Principal:
        """Verify an `authorization: Bearer <jwt>` header value."""
        if not header:
            raise Unauthenticated("missing bearer token", reason="MISSING_TOKEN")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <token>'", reason="MALFORMED_AUTHORIZATION")
        return self.verify(token.strip())


def service_token(settings: ServiceSettings, *, subject: str, roles: Iterable[Role | str] = (Role.SERVICE,),
                  lifetime_seconds: int = 3600) -> str:
    """A token for this process calling its peers as itself (a feed follower, a check).

    With `CRM_JWT_SERVICE_KEY_FILE` (a PEM private key, RSA or P-256, from a Secret) it is signed
    RS256/ES256 under `CRM_JWT_SERVICE_KEY_ID`, the `kid` whose public key the platform publishes
    in a JWKS listed in `CRM_JWT_JWKS_URL`: the only way a service identity is accepted in
    production. Without it, outside production, HS256 with the shared secret (`make run`, tests).
    """
    common: dict[str, Any] = {"subject": subject, "roles": roles, "issuer": settings.jwt_issuer,
                              "audience": settings.jwt_audience, "lifetime_seconds": lifetime_seconds}
    if settings.jwt_service_key_file:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(Path(settings.jwt_service_key_file).read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            algorithm = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            algorithm = "ES256"
        else:
            raise ValueError("CRM_JWT_SERVICE_KEY_FILE must hold an RSA or a P-256 private key")
        if not settings.jwt_service_key_id:
            raise ValueError("CRM_JWT_SERVICE_KEY_ID must name the key's kid in the published JWKS")
        return issue_token(private_key=key, key_id=settings.jwt_service_key_id, algorithm=algorithm, **common)
    if not settings.is_development:
        raise ValueError("CRM_JWT_SERVICE_KEY_FILE is required in production: HS256 service tokens are refused there")
    return issue_token(secret=settings.jwt_secret.get_secret_value(), **common)


def issue_token(
    *, secret: str = "", subject: str, roles: Iterable[Role | str], issuer: str = "crm-platform",
    audience: str = "crm", lifetime_seconds: int = 3600, private_key: Any = None, key_id: str = "",
    algorithm: str = ALGORITHM,
) -> str:
    """Mint a token: for the demo, tests and service identities. Production end-user tokens
    come from the bank's identity provider with the same claims.

    HS256 signs with `secret`; RS256/ES256 sign with `private_key` (a PEM string or a
    `cryptography` key) and name `key_id` in the header, the `kid` under which the public key is
    published in the JWKS."""
    if not 0 < lifetime_seconds <= MAX_TOKEN_LIFETIME_SECONDS:
        raise ValueError(f"lifetime_seconds must be in 1..{MAX_TOKEN_LIFETIME_SECONDS}")
    now = int(time.time())
    claims = {
        "sub": subject, "roles": [Role(r).value for r in roles], "iss": issuer, "aud": audience,
        "iat": now, "exp": now + lifetime_seconds,
    }
    if algorithm == ALGORITHM:
        return jwt.encode(claims, secret, algorithm=ALGORITHM)
    if algorithm not in ASYMMETRIC_ALGORITHMS or private_key is None or not key_id:
        raise ValueError(f"{algorithm} needs a private key and a key id; algorithms: HS256, "
                         + ", ".join(sorted(ASYMMETRIC_ALGORITHMS)))
    return jwt.encode(claims, private_key, algorithm=algorithm, headers={"kid": key_id})
