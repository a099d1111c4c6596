"""Observed response rates for scoring: loaded by one aggregate (rates.repository), smoothed by
rates.rules. An audience build loads them fresh in its own read transaction (one aggregate per
build); next best action and trigger firing, which score one customer at a time, share a copy
cached for `ttl` (60 s by default, `CRM_CAMPAIGN_RESPONSE_RATE_CACHE_SECONDS`): rates move slowly,
and a minute-old rate costs less than an aggregate per request. One refresh runs at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from crm_campaign.rates import rules
from crm_campaign.rates.repository import ResponseRateRepository
from crm_campaign.rates.rules import ObservedRates, Prior
from crmkit.db import Database, UnitOfWork

DEFAULT_TTL_SECONDS = 60.0


class ResponseRates:
    def __init__(self, *, db: Database, repository: ResponseRateRepository, prior: Prior,
                 ttl_seconds: float = DEFAULT_TTL_SECONDS, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._repository = repository
        self._prior = prior
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cached: tuple[float, ObservedRates] | None = None
        self._lock = asyncio.Lock()

    async def load(self, uow: UnitOfWork) -> ObservedRates:
        """The rates now, read in the caller's transaction (and kept as the cached copy)."""
        rates = rules.observed(await self._repository.tallies(uow), self._prior)
        self._cached = (self._monotonic(), rates)
        return rates

    async def current(self) -> ObservedRates:
        """The cached rates, refreshed in a read-only transaction of their own when older than `ttl`."""
        if self._fresh():
            assert self._cached is not None
            return self._cached[1]
        async with self._lock:
            if not self._fresh():
                async with self._db.unit_of_work(read_only=True) as uow:
                    await self.load(uow)
            assert self._cached is not None
            return self._cached[1]

    def _fresh(self) -> bool:
        return self._cached is not None and self._monotonic() - self._cached[0] < self._ttl
