"""The service's loaded propensity models, and scoring with them off the event loop.

A model version is read, checked against its registered SHA-256 and unpickled once per process
(a registered version never changes), in a thread; scoring (one vectorised predict over a whole
audience, or over one customer's channels) runs in a thread too. A version that cannot be used
(its bytes fail the hash check, or are gone) is logged once and left out: the offers of its type
fall back to their observed response rate, and the build or answer goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from crm_campaign.audience.scoring import Propensity
from crm_campaign.propensity import scoring
from crm_campaign.propensity.model import LatestVersion
from crm_campaign.propensity.repository import PropensityRepository
from crm_campaign.propensity.scoring import CustomerFeatures, Scorer
from crmkit.db import Database
from crmkit.logs import get_logger

log = get_logger("crm.campaign.propensity")


class PropensityScorers:
    def __init__(self, *, db: Database, repository: PropensityRepository) -> None:
        self._db = db
        self._repository = repository
        self._loaded: dict[LatestVersion, Scorer] = {}
        self._refused: set[LatestVersion] = set()
        self._lock = asyncio.Lock()

    async def latest(self, offer_types: Iterable[str]) -> dict[str, Scorer]:
        """The newest usable model of each of these offer types that has one."""
        wanted = sorted({t for t in offer_types if t})
        if not wanted:
            return {}
        async with self._db.unit_of_work(read_only=True) as uow:
            versions = await self._repository.latest_versions(uow, offer_types=wanted)
        return await self.loaded(versions)

    async def loaded(self, versions: Iterable[LatestVersion]) -> dict[str, Scorer]:
        """These versions' models by offer type, loading the ones not held yet."""
        versions = list(versions)
        missing = [v for v in versions if v not in self._loaded and v not in self._refused]
        if missing:
            async with self._lock:
                for version in missing:
                    if version not in self._loaded and version not in self._refused:
                        await self._load(version)
        return {v.offer_type: self._loaded[v] for v in versions if v in self._loaded}

    async def _load(self, version: LatestVersion) -> None:
        async with self._db.unit_of_work(read_only=True) as uow:
            artifact = await self._repository.artifact(uow, offer_type=version.offer_type, version=version.version)
        try:
            if artifact is None:
                raise LookupError("the version is gone")
            self._loaded[version] = await asyncio.to_thread(scoring.load, version, artifact)
        except Exception as error:  # an unusable model must not stop builds or answers
            self._refused.add(version)
            log.warning("propensity_model_refused", propensity_model=version.name, error=type(error).__name__,
                        detail=str(error)[:200])

    async def score(self, scorer: Scorer, customers: Mapping[str, CustomerFeatures], channels: Sequence[int], *,
                    at: datetime) -> dict[str, Propensity]:
        """Each scorable customer's probabilities from `scorer`, computed in a thread."""
        found = await asyncio.to_thread(scoring.probabilities, scorer, customers, channels, at=at)
        return {customer_id: Propensity(scorer.name, by_channel) for customer_id, by_channel in found.items()}

    async def customer(self, versions: Iterable[LatestVersion], customer_id: str, features: CustomerFeatures,
                       channels: Sequence[int], *, at: datetime) -> dict[str, Propensity]:
        """One customer's probabilities by offer type from these versions, in one thread hop."""
        scorers = await self.loaded(versions)
        if not scorers:
            return {}

        def run() -> dict[str, dict[int, float]]:
            found = {t: scoring.probabilities(s, {customer_id: features}, channels, at=at) for t, s in scorers.items()}
            return {t: by_customer[customer_id] for t, by_customer in found.items() if by_customer}

        return {t: Propensity(scorers[t].name, by_channel) for t, by_channel in (await asyncio.to_thread(run)).items()}

    async def audience(self, offer_types: Iterable[str], customers: Mapping[str, CustomerFeatures],
                       channels: Sequence[int], *, at: datetime) -> dict[str, dict[str, Propensity]]:
        """By customer, their probabilities by offer type, for the offer types with a usable model."""
        found: dict[str, dict[str, Propensity]] = {}
        if not customers:
            return found
        for offer_type, scorer in sorted((await self.latest(offer_types)).items()):
            for customer_id, propensity in (await self.score(scorer, customers, channels, at=at)).items():
                found.setdefault(customer_id, {})[offer_type] = propensity
        return found
