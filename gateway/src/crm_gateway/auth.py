"""End-user authentication and per-route roles, and forwarding the same identity to services.

A route declares who may call it with `Depends(require_roles(...))`; the dependency verifies
the `Authorization: Bearer <jwt>` header and returns the `Principal`. A missing or bad token is
401 (with `WWW-Authenticate: Bearer`; 429 once the client address has failed too often, see
limits.py), a good token without an allowed role is 403; both are answered here, before any
service is called. The services verify the token again: the gateway
is a first check, not the only one.

The token travels to services as explicit call metadata (`forwarded(principal)`), rather than
through the `crmkit.auth` context variable that the channel interceptor can also read: a
FastAPI dependency has no clean place to reset a context variable, and ASGI test transports run
requests in the caller's context, so a bound principal could outlive its request. Explicit
metadata cannot leak, and a call that forgets it fails closed (UNAUTHENTICATED from the service).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crm_gateway.limits import LimitClass, RateLimits, limit_class_of
from crmkit.auth import Principal, Role, TokenVerifier
from crmkit.errors import PermissionDenied, Unauthenticated

# Declares the scheme in the OpenAPI document; the header itself is checked below, so that a
# malformed header and a missing one get distinct reasons.
BEARER_SCHEME = HTTPBearer(
    scheme_name="bearerAuth", bearerFormat="JWT", auto_error=False,
    description="A JWT from the bank's identity provider with the platform's `roles` claim.",
)

Metadata = tuple[tuple[str, str], ...]


def require_roles(*roles: Role, limit: LimitClass | None = None) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers with a verified token carrying any of `roles`, within the
    route's rate limit (limits.py): `limit`, or by the HTTP method (GET reads, others write)."""
    allowed = frozenset(roles)
    if not allowed:
        raise ValueError("a route must allow at least one role")

    async def authenticated_principal(
        request: Request,
        _: HTTPAuthorizationCredentials | None = Security(BEARER_SCHEME),  # noqa: B008 - FastAPI style
    ) -> Principal:
        verifier: TokenVerifier = request.app.state.verifier
        limits: RateLimits = request.app.state.rate_limits
        try:
            principal = verifier.verify_bearer(request.headers.get("authorization"))
        except Unauthenticated:  # 401 while the address has failures left, then 429 (limits.py)
            await limits.admit_failed_authentication(address=request.client.host if request.client else "")
            raise
        if not principal.has_any(allowed):
            raise PermissionDenied("this route is not open to the caller's roles", reason="ROLE_NOT_ALLOWED")
        route = request.scope.get("route")
        await limits.admit(client=principal.subject, route=getattr(route, "name", request.url.path),
                           limit_class=limit or limit_class_of(request.method))
        return principal

    # Read back by the OpenAPI hook (app.py), which states each route's limit.
    authenticated_principal.rate_limited = True  # type: ignore[attr-defined]
    authenticated_principal.limit_class = limit  # type: ignore[attr-defined]
    return authenticated_principal


def roles_text(roles: Iterable[Role]) -> str:
    """Roles as the OpenAPI descriptions list them."""
    return ", ".join(f"`{role.value}`" for role in sorted(roles))


def forwarded(principal: Principal) -> Metadata:
    """Call metadata carrying the end user's token to a service, which verifies it again."""
    return (("authorization", f"Bearer {principal.token}"),)
