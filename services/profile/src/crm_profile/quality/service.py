"""The data-quality report: completeness, validity and duplicates per field and source system.

The figures are aggregates computed in PostgreSQL (see repository.py for their cost) and
reused for `cache_seconds` (the contract allows figures a few minutes old), so dashboards
polling the report do not rescan a million customers on every call. Thresholds are applied
after the aggregation, so a request's overrides never need a rescan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from crm_profile.attributes.model import AttributeDefinition
from crm_profile.attributes.repository import AttributeRepository
from crm_profile.quality import rules
from crm_profile.quality.repository import Aggregates, QualityRepository
from crm_profile.quality.rules import FieldQuality, Thresholds
from crmkit.db import UnitOfWork


@dataclass(frozen=True)
class QualityReport:
    compute_time: datetime
    customer_count: int
    thresholds: Thresholds
    fields: Sequence[FieldQuality]
    suspected_duplicate_count: int
    flagged_field_count: int


@dataclass(frozen=True)
class _Computed:
    at: datetime
    monotonic: float
    fingerprint: tuple[tuple[str, int], ...]
    aggregates: Aggregates
    suspected_duplicates: int


class QualityReports:
    def __init__(
        self, *, repository: QualityRepository, attributes: AttributeRepository, defaults: Thresholds,
        expected_fields: Sequence[str], cache_seconds: float,
    ) -> None:
        self._repository = repository
        self._attributes = attributes
        self._defaults = defaults
        self._expected = frozenset(expected_fields)
        self._cache_seconds = cache_seconds
        self._cached: _Computed | None = None
        self._computing = asyncio.Lock()

    async def report(self, *, uow: UnitOfWork, fields: Sequence[str], source_systems: Sequence[str],
                     thresholds: Thresholds) -> QualityReport:
        definitions = await self._attributes.definitions(uow)
        rules.check_request(fields, thresholds, frozenset(definitions))
        applied = rules.effective(self._defaults, thresholds)
        computed = await self._aggregates(uow=uow, definitions=list(definitions.values()))
        aggregates = computed.aggregates
        sources = sorted(s for s in aggregates.populations if s and (not source_systems or s in source_systems))
        ordered = rules.order_fields(fields, list(definitions))
        all_rows: list[FieldQuality] = []
        source_rows: list[FieldQuality] = []
        for path in ordered:
            expected = self._is_expected(path, definitions)
            all_rows.append(rules.assess(path, "", aggregates.populations.get("", 0),
                                         rules.counts_of(aggregates.counts, path, ""), expected=expected,
                                         thresholds=applied))
            source_rows.extend(rules.assess(path, source, aggregates.populations.get(source, 0),
                                            rules.counts_of(aggregates.counts, path, source), expected=expected,
                                            thresholds=applied) for source in sources)
        return QualityReport(
            compute_time=computed.at, customer_count=aggregates.populations.get("", 0), thresholds=applied,
            fields=[*all_rows, *source_rows], suspected_duplicate_count=computed.suspected_duplicates,
            flagged_field_count=sum(1 for row in all_rows if row.flags))

    def _is_expected(self, path: str, definitions: dict[str, AttributeDefinition]) -> bool:
        if path.startswith("attributes."):
            definition = definitions.get(path.removeprefix("attributes."))
            return bool(definition and definition.completeness_expected)
        return path in self._expected

    async def _aggregates(self, *, uow: UnitOfWork, definitions: list[AttributeDefinition]) -> _Computed:
        """The aggregates, recomputed (in the caller's read-only unit of work, so every figure comes
        from one snapshot) when older than the cache time or the catalogue changed; one computation
        at a time, so concurrent callers share it."""
        fingerprint = tuple(sorted((d.attribute_id, d.version) for d in definitions))
        async with self._computing:
            cached = self._cached
            if (cached is not None and cached.fingerprint == fingerprint
                    and time.monotonic() - cached.monotonic < self._cache_seconds):
                return cached
            started = datetime.now(UTC)
            aggregates = await self._repository.core(uow)
            await self._repository.attributes(uow, definitions, aggregates, today=started.date())
            pending = await self._repository.pending_match_candidates(uow)
            if pending is None:
                pending = await self._repository.customers_sharing_an_identifier(uow)
            self._cached = _Computed(started, time.monotonic(), fingerprint, aggregates, pending)
            return self._cached
