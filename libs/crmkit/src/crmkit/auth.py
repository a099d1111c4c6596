"""Caller identity: a principal and roles from a verified JWT.

Channel applications authenticate end users at the gateway; the gateway forwards the bearer
token in the `authorization` metadata of every gRPC call, and each service verifies it again
(no service trusts its network). Internal teams' tools call services with their own tokens.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import jwt

from crmkit.errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from crmkit.settings import ServiceSettings

ALGORITHM = "HS256"
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


class TokenVerifier:
    """Verifies HS256 JWTs: signature, expiry, issuer, audience, lifetime and known roles.

    A token must say when it was issued (`iat`), not in the future beyond the clock skew, and
    must not live longer than `max_lifetime_seconds` (`exp - iat`): a correctly signed token
    valid for days is refused, whoever minted it.

    A channel application sends the same token with every call for its lifetime, so verified
    tokens are remembered (bounded, until they expire): the signature check and claim parsing
    happen once per token, not once per call. Expiry is still checked on every use.
    """

    CACHE_SIZE = 10_000

    def __init__(self, *, secret: str, issuer: str, audience: str,
                 max_lifetime_seconds: int = MAX_TOKEN_LIFETIME_SECONDS) -> None:
        if max_lifetime_seconds <= 0:
            raise ValueError("max_lifetime_seconds must be positive")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._max_lifetime = max_lifetime_seconds
        self._verified: dict[str, tuple[Principal, float]] = {}

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> TokenVerifier:
        """The verifier every service and the gateway build, so that they all agree."""
        return cls(secret=settings.jwt_secret.get_secret_value(), issuer=settings.jwt_issuer,
                   audience=settings.jwt_audience, max_lifetime_seconds=settings.jwt_max_token_lifetime_seconds)

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

    def _verify_uncached(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
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


def issue_token(
    *, secret: str, subject: str, roles: Iterable[Role | str], issuer: str = "crm-platform",
    audience: str = "crm", lifetime_seconds: int = 3600,
) -> str:
    """Mint a token: for the demo, tests and service identities. Production end-user tokens
    come from the bank's identity provider with the same claims."""
    if not 0 < lifetime_seconds <= MAX_TOKEN_LIFETIME_SECONDS:
        raise ValueError(f"lifetime_seconds must be in 1..{MAX_TOKEN_LIFETIME_SECONDS}")
    now = int(time.time())
    claims = {
        "sub": subject, "roles": [Role(r).value for r in roles], "iss": issuer, "aud": audience,
        "iat": now, "exp": now + lifetime_seconds,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
