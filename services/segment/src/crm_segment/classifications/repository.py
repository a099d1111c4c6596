"""All SQL of the standard classifications. Nothing here commits: the RPC's unit of work, the
feed consumer's transaction or one scheduled batch's unit of work is the caller's.

Each customer's classification lives on their read-model row (`customer_feature`); money there
is NUMERIC in currency units, here converted to and from minor units.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_segment.classifications.model import (
    MINOR_PER_UNIT,
    ActivityLayer,
    ActivityThresholds,
    Classification,
    ClassificationInputs,
    LifecycleStage,
    LifecycleThresholds,
    RfmBoundaries,
    RfmBoundary,
    RfmScore,
    RfmSegment,
    ServiceStandard,
    StoredThresholds,
    StoredTier,
    TierDefinition,
    TierState,
    ValueTier,
)
from crm_segment.classifications.tables import (
    classification_run,
    classification_thresholds,
    value_tier_definition,
)
from crm_segment.features.tables import customer_feature

cf = customer_feature.c
d = value_tier_definition.c
run = classification_run.c
th = classification_thresholds.c

_SERVICE_COLUMNS = ("dedicated_relationship_manager", "priority_service", "complaint_response_hours",
                    "max_marketing_contacts_per_week", "max_marketing_contacts_per_month", "care_programme",
                    "min_contacts_per_year", "max_customers_per_manager")


def _minor(amount: Decimal | None) -> int:
    return int((amount or 0) * MINOR_PER_UNIT)


def _units(minor: int | None) -> Decimal | None:
    return None if minor is None else Decimal(minor) / MINOR_PER_UNIT


# --- tier definitions -------------------------------------------------------------------------


def _tier(row: Any, customer_count: int = 0) -> StoredTier:
    service = ServiceStandard(**{name: row[name] for name in _SERVICE_COLUMNS}, benefits=tuple(row["benefits"]))
    definition = TierDefinition(
        display_name=row["display_name"], service=service, min_average_aum_minor=row["min_average_aum_minor"],
        min_expected_lifetime_value_minor=row["min_expected_lifetime_value_minor"],
        min_inflow_90d_minor=row["min_inflow_90d_minor"], min_product_count=row["min_product_count"],
        downgrade_grace_months=row["downgrade_grace_months"])
    return StoredTier(tier=ValueTier(row["tier"]), definition=definition, version=row["version"],
                      updater=row["updater"], updated_at=row["updated_at"], customer_count=customer_count)


async def tiers(connection: AsyncConnection, *, with_counts: bool = False) -> list[StoredTier]:
    """The five definitions (in enum order; callers sort by rank)."""
    counts: dict[int, int] = {}
    if with_counts:
        counted = await connection.execute(
            sa.select(cf.value_tier, sa.func.count()).where(sa.not_(cf.removed), cf.value_tier != 0)
            .group_by(cf.value_tier))
        counts = {row[0]: row[1] for row in counted}
    rows = await connection.execute(sa.select(value_tier_definition).order_by(d.tier))
    return [_tier(row, counts.get(row.tier, 0)) for row in rows.mappings()]


async def tier_for_update(connection: AsyncConnection, tier: ValueTier) -> StoredTier | None:
    """One definition, locked until the unit of work ends; every definition is locked, in one
    order, because a change is validated against the others (the thresholds' order)."""
    rows = await connection.execute(sa.select(value_tier_definition).order_by(d.tier).with_for_update())
    found = [_tier(row) for row in rows.mappings()]
    return next((t for t in found if t.tier is tier), None)


async def save_tier(connection: AsyncConnection, tier: ValueTier, definition: TierDefinition, *, updater: str
                    ) -> StoredTier:
    service = definition.service
    row = (await connection.execute(
        sa.update(value_tier_definition).where(d.tier == int(tier)).values(
            display_name=definition.display_name, min_average_aum_minor=definition.min_average_aum_minor,
            min_expected_lifetime_value_minor=definition.min_expected_lifetime_value_minor,
            min_inflow_90d_minor=definition.min_inflow_90d_minor, min_product_count=definition.min_product_count,
            downgrade_grace_months=definition.downgrade_grace_months,
            **{name: getattr(service, name) for name in _SERVICE_COLUMNS}, benefits=list(service.benefits),
            version=d.version + 1, updater=updater, updated_at=sa.func.now())
        .returning(value_tier_definition))).mappings().one()
    count = await connection.scalar(sa.select(sa.func.count()).where(sa.not_(cf.removed), cf.value_tier == int(tier)))
    return _tier(row, int(count or 0))


async def definitions_version(connection: AsyncConnection) -> int:
    """Grows with every definition or threshold change: a run made before it is out of date."""
    tiers_version = sa.select(sa.func.coalesce(sa.func.sum(d.version), 0)).scalar_subquery()
    thresholds_version = sa.select(th.version).scalar_subquery()
    return int(await connection.scalar(sa.select(tiers_version + thresholds_version)) or 0)


# --- activity and lifecycle thresholds ----------------------------------------------------------

_ACTIVITY_COLUMNS = tuple(f.name for f in dataclasses.fields(ActivityThresholds) if f.name != "core_window_days")
_LIFECYCLE_COLUMNS = tuple(f.name for f in dataclasses.fields(LifecycleThresholds) if f.name != "trend_window_days")


def _thresholds(row: Any) -> StoredThresholds:
    return StoredThresholds(activity=ActivityThresholds(**{name: row[name] for name in _ACTIVITY_COLUMNS}),
                            lifecycle=LifecycleThresholds(**{name: row[name] for name in _LIFECYCLE_COLUMNS}),
                            version=row["version"], updater=row["updater"], updated_at=row["updated_at"])


async def thresholds(connection: AsyncConnection, *, for_update: bool = False) -> StoredThresholds:
    query = sa.select(classification_thresholds)
    row = (await connection.execute(query.with_for_update() if for_update else query)).mappings().one()
    return _thresholds(row)


async def save_thresholds(connection: AsyncConnection, activity: ActivityThresholds,
                          lifecycle: LifecycleThresholds, *, updater: str) -> StoredThresholds:
    row = (await connection.execute(
        sa.update(classification_thresholds).values(
            **{name: getattr(activity, name) for name in _ACTIVITY_COLUMNS},
            **{name: getattr(lifecycle, name) for name in _LIFECYCLE_COLUMNS},
            version=th.version + 1, updater=updater, updated_at=sa.func.now())
        .returning(classification_thresholds))).mappings().one()
    return _thresholds(row)


# --- customers --------------------------------------------------------------------------------

_INPUT_COLUMNS = (
    cf.customer_id, cf.relationship_manager_id, cf.closed_on, cf.average_aum_90d, cf.aum, cf.aum_change_90d,
    cf.product_count, cf.tenure_days, cf.days_since_last_activity, cf.transaction_count_90d, cf.login_count_30d,
    cf.holdings_opened_90d, cf.holdings_closed_90d, cf.recency_days, cf.frequency, cf.monetary, cf.rfm_window_days,
    cf.features_as_of, cf.value_tier, cf.value_tier_since, cf.previous_value_tier, cf.qualifying_aum,
    cf.downgrade_due_on, cf.activity_layer, cf.activity_layer_since, cf.lifecycle_stage, cf.lifecycle_stage_since,
    cf.rfm_recency_score, cf.rfm_frequency_score, cf.rfm_monetary_score, cf.rfm_segment, cf.expected_lifetime_value,
    cf.classified_at,
)


def _stored(row: Any) -> Classification | None:
    if row.classified_at is None:
        return None
    rfm = None
    if row.rfm_recency_score is not None:
        rfm = RfmScore(row.customer_id, row.rfm_recency_score, row.rfm_frequency_score, row.rfm_monetary_score,
                       RfmSegment(row.rfm_segment))
    return Classification(
        customer_id=row.customer_id,
        tier=TierState(ValueTier(row.value_tier), row.value_tier_since, ValueTier(row.previous_value_tier),
                       row.downgrade_due_on),
        qualifying_aum_minor=_minor(row.qualifying_aum), activity_layer=ActivityLayer(row.activity_layer),
        activity_layer_since=row.activity_layer_since, lifecycle_stage=LifecycleStage(row.lifecycle_stage),
        lifecycle_stage_since=row.lifecycle_stage_since, rfm=rfm, rfm_recency_days=row.recency_days,
        rfm_frequency=row.frequency or 0, rfm_monetary_minor=_minor(row.monetary), rfm_window_days=row.rfm_window_days,
        expected_lifetime_value_minor=(_minor(row.expected_lifetime_value)
                                       if row.expected_lifetime_value is not None else None),
        classified_at=row.classified_at, features_as_of=row.features_as_of,
        relationship_manager_id=row.relationship_manager_id)


def _inputs(row: Any) -> ClassificationInputs:
    return ClassificationInputs(
        customer_id=row.customer_id, relationship_manager_id=row.relationship_manager_id,
        closed=row.closed_on is not None, average_aum_minor=_minor(row.average_aum_90d), aum_minor=_minor(row.aum),
        aum_change_90d_minor=_minor(row.aum_change_90d), product_count=row.product_count or 0,
        tenure_days=row.tenure_days or 0, days_since_last_activity=row.days_since_last_activity,
        # Logins are counted over 30 days only: within the 90-day window, a floor of its logins.
        activity_count_90d=(row.transaction_count_90d or 0) + (row.login_count_30d or 0),
        holdings_opened_90d=row.holdings_opened_90d or 0, holdings_closed_90d=row.holdings_closed_90d or 0,
        recency_days=row.recency_days, frequency=row.frequency or 0, monetary_minor=_minor(row.monetary),
        rfm_window_days=row.rfm_window_days, features_as_of=row.features_as_of, current=_stored(row))


async def inputs(connection: AsyncConnection, customer_ids: Sequence[str], *, skip_locked: bool = False
                 ) -> list[ClassificationInputs]:
    """The customers' rows (those in the population), in customer order, locked until the
    transaction ends; with `skip_locked`, rows another transaction holds are left out."""
    query = (sa.select(*_INPUT_COLUMNS).where(cf.customer_id.in_(list(customer_ids)), sa.not_(cf.removed))
             .order_by(cf.customer_id).with_for_update(skip_locked=skip_locked))
    rows = await connection.execute(query)
    return [_inputs(row) for row in rows]


async def classification(connection: AsyncConnection, customer_id: str) -> Classification | None:
    """The stored classification of a customer in the population; an unclassified one has
    classified_at None (and unspecified classes)."""
    row = (await connection.execute(sa.select(*_INPUT_COLUMNS).where(
        cf.customer_id == customer_id, sa.not_(cf.removed)))).first()
    if row is None:
        return None
    stored = _stored(row)
    if stored is not None:
        return stored
    none = TierState(ValueTier.UNSPECIFIED, None, ValueTier.UNSPECIFIED, None)
    return Classification(customer_id=customer_id, tier=none, qualifying_aum_minor=0,
                          activity_layer=ActivityLayer.UNSPECIFIED, activity_layer_since=None,
                          lifecycle_stage=LifecycleStage.UNSPECIFIED, lifecycle_stage_since=None, rfm=None,
                          rfm_recency_days=row.recency_days, rfm_frequency=row.frequency or 0,
                          rfm_monetary_minor=_minor(row.monetary), rfm_window_days=row.rfm_window_days,
                          expected_lifetime_value_minor=None, classified_at=None, features_as_of=row.features_as_of,
                          relationship_manager_id=row.relationship_manager_id)


async def customer_ids_after(connection: AsyncConnection, after: str, limit: int) -> list[str]:
    rows = await connection.execute(sa.select(cf.customer_id).where(cf.customer_id > after, sa.not_(cf.removed))
                                    .order_by(cf.customer_id).limit(limit))
    return list(rows.scalars())


async def write(connection: AsyncConnection, classifications: Sequence[Classification]) -> None:
    if not classifications:
        return
    statement = (sa.update(customer_feature).where(cf.customer_id == sa.bindparam("key"))
                 .values({name: sa.bindparam(name) for name in _WRITTEN}))
    await connection.execute(statement, [_written(c) for c in classifications])


_WRITTEN = ("value_tier", "value_tier_since", "previous_value_tier", "qualifying_aum", "downgrade_due_on",
            "activity_layer", "activity_layer_since", "lifecycle_stage", "lifecycle_stage_since", "rfm_recency_score",
            "rfm_frequency_score", "rfm_monetary_score", "rfm_segment", "expected_lifetime_value", "classified_at")


def _written(c: Classification) -> dict[str, Any]:
    return {
        "key": c.customer_id, "value_tier": int(c.tier.tier), "value_tier_since": c.tier.since,
        "previous_value_tier": int(c.tier.previous), "qualifying_aum": _units(c.qualifying_aum_minor),
        "downgrade_due_on": c.tier.downgrade_due_on, "activity_layer": int(c.activity_layer),
        "activity_layer_since": c.activity_layer_since, "lifecycle_stage": int(c.lifecycle_stage),
        "lifecycle_stage_since": c.lifecycle_stage_since,
        "rfm_recency_score": c.rfm.recency if c.rfm else None,
        "rfm_frequency_score": c.rfm.frequency if c.rfm else None,
        "rfm_monetary_score": c.rfm.monetary if c.rfm else None,
        "rfm_segment": int(c.rfm.segment) if c.rfm else 0,
        "expected_lifetime_value": _units(c.expected_lifetime_value_minor), "classified_at": c.classified_at,
    }


# --- RFM runs ---------------------------------------------------------------------------------

# Ordering keys as `rules.rfm_keys` (higher is better); ties by customer id in byte order, as
# Python compares strings.
_ORDERINGS = {
    "recency": "-cf.recency_days::bigint",
    "frequency": "cf.frequency::bigint",
    "monetary": "trunc(cf.monetary * 100)::bigint",
}
_SCORED = "NOT cf.removed AND cf.recency_days IS NOT NULL AND cf.frequency > 0"


async def scored_count(connection: AsyncConnection) -> int:
    return int(await connection.scalar(sa.text(f"SELECT count(*) FROM customer_feature cf WHERE {_SCORED}")) or 0)  # noqa: S608 - fixed text


async def cuts(connection: AsyncConnection, positions: Sequence[int]) -> RfmBoundaries:
    """The (value, customer id) at each 1-based position of each ordering (None at 0)."""
    wanted = [p for p in positions if p > 0]
    found: dict[str, dict[int, RfmBoundary]] = {}
    for dimension, key in _ORDERINGS.items():
        rows = await connection.execute(sa.text(
            f"SELECT position, value, customer_id FROM ("  # noqa: S608 - fixed text, positions bound
            f"  SELECT row_number() OVER (ORDER BY {key}, cf.customer_id COLLATE \"C\") AS position, "
            f"         {key} AS value, cf.customer_id FROM customer_feature cf WHERE {_SCORED}) ranked "
            "WHERE position = ANY(CAST(:positions AS bigint[]))"), {"positions": wanted})
        found[dimension] = {row.position: RfmBoundary(int(row.value), row.customer_id) for row in rows}
    return RfmBoundaries(*(tuple(found[dimension].get(p) if p > 0 else None for p in positions)
                           for dimension in _ORDERINGS))


def _boundaries_json(boundaries: RfmBoundaries) -> dict[str, list[list[Any] | None]]:
    return {name: [[b.value, b.customer_id] if b else None for b in getattr(boundaries, name)]
            for name in _ORDERINGS}


def _boundaries(value: dict[str, list[list[Any] | None]]) -> RfmBoundaries:
    return RfmBoundaries(*(tuple(RfmBoundary(int(b[0]), str(b[1])) if b else None for b in value[name])
                           for name in _ORDERINGS))


async def start_run(connection: AsyncConnection, *, scored: int, boundaries: RfmBoundaries, definitions_version: int
                    ) -> int:
    run_id: int = await connection.scalar(sa.insert(classification_run).values(
        started_at=sa.func.now(), scored_customers=scored, rfm_boundaries=_boundaries_json(boundaries),
        definitions_version=definitions_version).returning(run.run_id))
    return run_id


async def finish_run(connection: AsyncConnection, run_id: int, *, classified: int) -> None:
    await connection.execute(sa.update(classification_run).where(run.run_id == run_id)
                             .values(finished_at=sa.func.now(), classified_customers=classified))


async def latest_boundaries(connection: AsyncConnection) -> RfmBoundaries | None:
    value = await connection.scalar(sa.select(run.rfm_boundaries).order_by(run.run_id.desc()).limit(1))
    return _boundaries(value if isinstance(value, dict) else json.loads(value)) if value is not None else None


async def last_finished_run(connection: AsyncConnection) -> tuple[datetime, int] | None:
    """When the latest finished run finished, and the definitions version it classified with."""
    row = (await connection.execute(sa.select(run.finished_at, run.definitions_version)
                                    .where(run.finished_at.is_not(None)).order_by(run.run_id.desc()).limit(1))).first()
    return (row.finished_at, row.definitions_version) if row is not None else None


