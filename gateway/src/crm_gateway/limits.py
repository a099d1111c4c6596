"""Published limits: a token bucket per client and route, answered 429 with `Retry-After`.

Each `/v1` route belongs to a class of limit (`read` for GET, `write` otherwise, unless the
route names one), and each class is a rate and a burst from settings. A client is the verified
token's subject (an app, an employee): buckets are per (subject, route), so one busy channel
application does not starve another, and a client hammering one route keeps its others.

With `CRM_GATEWAY_REDIS_URL` set, the buckets live in Redis and every replica of the gateway
draws from the same bucket (one atomic script per request, Redis's clock, keys expiring once
full again). Without it, or while Redis does not answer within its short timeout, each
replica keeps its own buckets in process: the limit then holds per replica, and a Redis outage
degrades the limit rather than the traffic (logged as `rate_limit_store_unavailable`).

Failed authentication has its own bucket per client address (the connection's peer, or the
address a trusted proxy forwards; uvicorn's `FORWARDED_ALLOW_IPS`): each 401 takes a token, and
once the address has none left its bad tokens are answered 429 instead, until it refills. Only
failures draw from it, so a flood from an address shared with real users (a NAT, a proxy) never
refuses their valid tokens; a valid token is checked against its own per-client limits.

The limits are stated in the OpenAPI document: each operation's `x-rate-limit` and its 429
response's description and `Retry-After` header (app.py).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from crmkit.errors import ResourceExhausted
from crmkit.logs import get_logger

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from crm_gateway.settings import GatewaySettings

log = get_logger("crm.gateway.limits")


class LimitClass(StrEnum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class Limit:
    """`per_second` requests on average, up to `burst` at once (the bucket's size)."""

    per_second: float
    burst: int

    def describe(self) -> str:
        return f"{self.per_second:g} requests per second per client, bursts of up to {self.burst}"

    def document(self) -> dict[str, Any]:
        return {"per_second": self.per_second, "burst": self.burst, "per": "client (token subject) and route",
                "algorithm": "token bucket"}


class RateLimited(ResourceExhausted):
    """Over the route's limit: 429 with `Retry-After` whole seconds."""

    def __init__(self, retry_after_seconds: float,
                 message: str = "rate limit exceeded for this client on this route; retry later") -> None:
        super().__init__(message, reason="RATE_LIMITED")
        self.retry_after = max(1, math.ceil(retry_after_seconds))


class Buckets(Protocol):
    async def take(self, key: str, limit: Limit) -> float:
        """Take one token: 0 when admitted, else the seconds until one is there."""


class LocalBuckets:
    """Buckets of this process; the least recently used are dropped beyond `max_keys`."""

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    async def take(self, key: str, limit: Limit) -> float:
        return self.take_now(key, limit)

    def take_now(self, key: str, limit: Limit) -> float:
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - at) * limit.per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / limit.per_second
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


# KEYS[1]: the bucket; ARGV: rate per second, burst. Returns the wait in microseconds (0: admitted).
# Redis's own clock, so that replicas with skewed clocks share one bucket consistently.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
"""


class RedisBuckets:
    """Buckets shared by every replica through Redis; this process's own when Redis fails."""

    def __init__(self, client: Redis, *, fallback: LocalBuckets | None = None) -> None:
        self._client = client
        self._script = client.register_script(_TAKE)
        self._fallback = fallback or LocalBuckets()

    async def take(self, key: str, limit: Limit) -> float:
        try:
            micros = await self._script(keys=[key], args=[limit.per_second, limit.burst])
        except Exception as exc:
            log.warning("rate_limit_store_unavailable", error_type=type(exc).__name__)
            return self._fallback.take_now(key, limit)
        return int(micros) / 1_000_000

    async def close(self) -> None:
        await self._client.aclose()


class RateLimits:
    """The limits of each class and the buckets they are drawn from."""

    KEY_PREFIX = "crm:gateway:rate:"

    def __init__(self, *, limits: dict[LimitClass, Limit], buckets: Buckets, enabled: bool = True,
                 auth_failures: Limit = Limit(1.0, 20)) -> None:
        self.limits = limits
        self.buckets = buckets
        self.enabled = enabled
        self.auth_failures = auth_failures

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> RateLimits:
        limits = {
            LimitClass.READ: Limit(settings.rate_limit_read_per_second, settings.rate_limit_read_burst),
            LimitClass.WRITE: Limit(settings.rate_limit_write_per_second, settings.rate_limit_write_burst),
        }
        buckets: Buckets = LocalBuckets()
        if settings.redis_url:
            from redis.asyncio import Redis

            client = Redis.from_url(settings.redis_url, socket_timeout=0.25,
                                    socket_connect_timeout=0.25)
            buckets = RedisBuckets(client)
        auth_failures = Limit(settings.rate_limit_auth_failure_per_second, settings.rate_limit_auth_failure_burst)
        return cls(limits=limits, buckets=buckets, enabled=settings.rate_limits_enabled, auth_failures=auth_failures)

    def limit_of(self, limit_class: LimitClass) -> Limit:
        return self.limits[limit_class]

    async def admit(self, *, client: str, route: str, limit_class: LimitClass) -> None:
        """Raise RateLimited unless the client has a token left for this route."""
        if not self.enabled:
            return
        # The subject is hashed: a bucket's key names no person, in Redis or in a dump.
        who = hashlib.sha256(client.encode()).hexdigest()[:24]
        wait = await self.buckets.take(f"{self.KEY_PREFIX}{route}:{who}", self.limits[limit_class])
        if wait > 0:
            raise RateLimited(wait)

    async def admit_failed_authentication(self, *, address: str) -> None:
        """Count one failed authentication from `address`: raise RateLimited once it has failed
        more than the limit allows (the caller then answers 429 instead of 401)."""
        if not self.enabled:
            return
        who = hashlib.sha256(address.encode()).hexdigest()[:24]
        wait = await self.buckets.take(f"{self.KEY_PREFIX}auth-failure:{who}", self.auth_failures)
        if wait > 0:
            raise RateLimited(wait, "too many failed authentications from this address; retry later")

    async def close(self) -> None:
        if isinstance(self.buckets, RedisBuckets):
            await self.buckets.close()


def limit_class_of(method: str) -> LimitClass:
    return LimitClass.READ if method.upper() in {"GET", "HEAD"} else LimitClass.WRITE
