"""The service's loaded propensity models, and scoring with them off the event loop.

A model version is read, checked against its registered SHA-256 and unpickled once per process
(a registered version never changes). Loading and scoring run on one thread of their own whose
OpenMP pool is one thread: on this machine a 20,000-row predict took 2.2 s on the default pool
(contending with the service for 2 cores) and 0.26 s on one thread. A version that cannot be used
(its bytes fail the hash check, or are gone) is logged once and left out: the offers of its type
fall back to their observed response rate, and the build or answer goes on.

Next best action scores one customer on one channel; the model reads only that channel, the
calendar slot and the customer's features, so answers are kept by those inputs (bounded, least
recently used first out) and a customer alike to an earlier one costs no predict at all.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

from crm_campaign.audience.scoring import Propensity
from crm_campaign.propensity import scoring
from crm_campaign.propensity.model import LatestVersion
from crm_campaign.propensity.repository import PropensityRepository
from crm_campaign.propensity.scoring import CustomerFeatures, FeatureKey, Scorer
from crmkit.db import Database
from crmkit.logs import get_logger

log = get_logger("crm.campaign.propensity")

T = TypeVar("T")
# Answers kept for next best action: (model, channels, month, weekday, feature key).
CACHED_ANSWERS = 50_000
AnswerKey = tuple[str, tuple[int, ...], int, int, FeatureKey]


def _score_audience(scorer: Scorer, customers: Mapping[str, CustomerFeatures], channels: Sequence[int],
                    at: datetime) -> tuple[dict[str, FeatureKey], dict[FeatureKey, dict[int, float]]]:
    keys = scoring.feature_keys(scorer, customers)
    return keys, scoring.by_feature_key(scorer, list(dict.fromkeys(keys.values())), channels, at=at)


def _one_openmp_thread() -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")  # this thread's own OpenMP setting, kept


class PropensityScorers:
    def __init__(self, *, db: Database, repository: PropensityRepository) -> None:
        self._db = db
        self._repository = repository
        self._loaded: dict[LatestVersion, Scorer] = {}
        self._refused: set[LatestVersion] = set()
        self._lock = asyncio.Lock()
        self._answers: OrderedDict[AnswerKey, dict[int, float]] = OrderedDict()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="propensity",
                                            initializer=_one_openmp_thread)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _off_loop(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

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
            self._loaded[version] = await self._off_loop(lambda: scoring.load(version, artifact))
        except Exception as error:  # an unusable model must not stop builds or answers
            self._refused.add(version)
            log.warning("propensity_model_refused", propensity_model=version.name, error=type(error).__name__,
                        detail=str(error)[:200])

    async def audience(self, offer_types: Iterable[str], customers: Mapping[str, CustomerFeatures],
                       channels: Sequence[int], *, at: datetime) -> dict[str, dict[str, Propensity]]:
        """By customer, their probabilities by offer type, for the offer types with a usable model
        (one predict per model over the distinct customers, on the scoring thread)."""
        if not customers:
            return {}
        scored: list[tuple[str, dict[str, FeatureKey], dict[FeatureKey, Propensity]]] = []
        for offer_type, scorer in sorted((await self.latest(offer_types)).items()):
            keys, by_key = await self._off_loop(functools.partial(_score_audience, scorer, customers, channels, at))
            scored.append((offer_type, keys, {key: Propensity(scorer.name, p) for key, p in by_key.items()}))
        # Customers scored alike share one mapping (a million customers of a few kinds hold a few).
        if len(scored) == 1:
            offer_type, keys, propensities = scored[0]
            alike = {key: {offer_type: propensity} for key, propensity in propensities.items()}
            return {customer_id: alike[key] for customer_id, key in keys.items()}
        found: dict[str, dict[str, Propensity]] = {}
        shared: dict[tuple[FeatureKey | None, ...], dict[str, Propensity]] = {}
        for customer_id in customers:
            combination = tuple(keys.get(customer_id) for _, keys, _ in scored)
            if (mapping := shared.get(combination)) is None:
                mapping = shared[combination] = {offer_type: propensities[key] for (offer_type, _, propensities), key
                                                 in zip(scored, combination, strict=True) if key is not None}
            if mapping:
                found[customer_id] = mapping
        return found

    async def customer(self, versions: Iterable[LatestVersion], features: CustomerFeatures,
                       channels: Sequence[int], *, at: datetime) -> dict[str, Propensity]:
        """One customer's probabilities by offer type from these versions: kept answers where the
        inputs were seen, the rest predicted in one hop to the scoring thread."""
        scorers = await self.loaded(versions)
        wanted = tuple(channels)
        found: dict[str, Propensity] = {}
        missing: list[tuple[str, Scorer, AnswerKey]] = []
        for offer_type, scorer in scorers.items():
            if not scoring.scorable(scorer, features):
                continue
            key = (scorer.name, wanted, at.month, at.isoweekday(), scoring.feature_key(scorer, features))
            if (kept := self._answers.get(key)) is not None:
                self._answers.move_to_end(key)
                found[offer_type] = Propensity(scorer.name, kept)
            else:
                missing.append((offer_type, scorer, key))
        if missing:
            def run() -> list[dict[int, float]]:
                return [scoring.by_feature_key(scorer, [key[4]], wanted, at=at)[key[4]] for _, scorer, key in missing]

            for (offer_type, scorer, key), by_channel in zip(missing, await self._off_loop(run), strict=True):
                self._answers[key] = by_channel
                found[offer_type] = Propensity(scorer.name, by_channel)
            while len(self._answers) > CACHED_ANSWERS:
                self._answers.popitem(last=False)
        return found
