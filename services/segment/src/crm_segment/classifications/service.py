"""Standard classifications: read a customer's, read and change the value-tier definitions, and
(re)classify customers, when the read model changes them and on schedule.

- **On change** (`on_change`): called in the feed consumer's transaction after an event changed a
  customer's row, so the classification commits with the change that caused it. RFM is scored
  against the latest run's quintile cuts, so a customer is placed among the same population.
- **On schedule** (`run`): the quintile cuts are found over the whole read model, then every
  customer is reclassified in batches of customer-id order, each batch in its own unit of work.
  `ClassificationSchedule` starts a run when the last is older than its interval or a tier
  definition changed since it started.

A tier, activity-layer or lifecycle-stage change is published on segment's feed
(`crm.segment.v1.CustomerClassification`, with the tier's service standard), so feedback and
campaign follow it; a definition change is published as `crm.segment.v1.ValueTierDefinition`,
a threshold change as `crm.segment.v1.ClassificationThresholds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.common.v1 import change_event_pb2
from crm_segment.classifications import repository, rules
from crm_segment.classifications.model import (
    MINOR_PER_UNIT,
    TIER_KEYS,
    TIER_RANK,
    ActivityThresholds,
    Classification,
    LifecycleThresholds,
    RfmBoundaries,
    ServiceStandard,
    StoredThresholds,
    StoredTier,
    Thresholds,
    TierDefinition,
    TierThresholds,
    ValueTier,
)
from crm_segment.clv import rules as clv_rules
from crm_segment.clv.service import LifetimeValues
from crm_segment.features.rules import customer_id_of
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import Database, UnitOfWork
from crmkit.errors import InvalidArgument, NotFound, PermissionDenied
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose
from crmkit.validation import Violations

log = get_logger("crm.segment.classifications")

ACTOR = "service:segment"
CLASSIFICATION_TYPE = "crm.segment.v1.CustomerClassification"
UPDATED = change_event_pb2.CHANGE_TYPE_UPDATED
# Proto path of UpdateValueTier's mask -> the definition's attribute it sets.
TIER_PATHS = {
    "display_name": "display_name", "min_average_aum": "min_average_aum_minor",
    "min_expected_lifetime_value": "min_expected_lifetime_value_minor", "min_inflow_90d": "min_inflow_90d_minor",
    "min_product_count": "min_product_count", "downgrade_grace_months": "downgrade_grace_months",
}
SERVICE_PATHS = {
    "dedicated_relationship_manager": "dedicated_relationship_manager",
    "max_customers_per_manager": "max_customers_per_manager", "min_contacts_per_year": "min_contacts_per_year",
    "priority_service": "priority_service", "max_response_time": "complaint_response_hours",
    "benefits": "benefits", "max_marketing_contacts_per_week": "max_marketing_contacts_per_week",
    "max_marketing_contacts_per_month": "max_marketing_contacts_per_month", "care_programme": "care_programme",
}
UPDATABLE = frozenset({*TIER_PATHS, "service_standard", *(f"service_standard.{p}" for p in SERVICE_PATHS)})
# UpdateClassificationThresholds' mask: a group or one of its updatable fields (the windows are
# facts of the read model's 90-day signals, so output only).
ACTIVITY_PATHS = frozenset(f.name for f in dataclasses.fields(ActivityThresholds)) - {"core_window_days"}
LIFECYCLE_PATHS = (frozenset(f.name for f in dataclasses.fields(LifecycleThresholds))
                   - {"trend_window_days", "churn_max_aum_minor"} | {"churn_max_aum"})
THRESHOLD_PATHS = frozenset({"activity", "lifecycle", *(f"activity.{p}" for p in ACTIVITY_PATHS),
                             *(f"lifecycle.{p}" for p in LIFECYCLE_PATHS)})
# The domain's field names (validation) -> the request's.
_REQUEST_FIELDS = {**{v: k for k, v in TIER_PATHS.items()},
                   **{f"service_standard.{v}": f"service_standard.{k}" for k, v in SERVICE_PATHS.items()}}

# Made by the API layer, so this module stays free of generated messages.
ClassificationMessage = Callable[[Classification, ServiceStandard | None], Message]
TierMessage = Callable[[StoredTier], Message]


class Classifications:
    def __init__(self, *, outbox: Outbox, lifetime_values: LifetimeValues | None, page_tokens: PageTokens,
                 classification_message: ClassificationMessage, tier_message: TierMessage,
                 thresholds_message: Callable[[StoredThresholds], Message], audit: AuditWriter | None = None,
                 clock: Clock = utc_now) -> None:
        self._outbox = outbox
        # Records who read which customer's classification and why; None only in tools and tests
        # that classify without serving reads.
        self._audit = audit
        self._lifetime_values = lifetime_values
        self._page_tokens = page_tokens
        self._classification_message = classification_message
        self._tier_message = tier_message
        self._thresholds_message = thresholds_message
        self._clock = clock

    # --- reads --------------------------------------------------------------------------------

    async def get(self, *, uow: UnitOfWork, customer_id: str, purpose: Purpose, actor: Principal
                  ) -> tuple[Classification, ServiceStandard | None]:
        found = await repository.classification(uow, customer_id)
        if found is None:
            raise NotFound(f"customer {customer_id} is not in the read model", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer_id": customer_id})
        if actor.is_relationship_manager_only and found.relationship_manager_id != actor.subject:
            raise PermissionDenied("the customer is outside your book", reason="OUTSIDE_BOOK")
        if self._audit is not None:
            await self._audit.record(AuditEntry(principal=actor.subject, action="classification.read",
                                                resource_name=f"customers/{customer_id}", purpose=purpose.purpose,
                                                justification=purpose.justification))
        return found, await self._service_of(uow, found.tier.tier)

    async def _service_of(self, uow: UnitOfWork, tier: ValueTier) -> ServiceStandard | None:
        if tier is ValueTier.UNSPECIFIED:
            return None
        return next(t.definition.service for t in await repository.tiers(uow) if t.tier is tier)

    async def list_tiers(self, *, uow: UnitOfWork, page_size: int, page_token: str) -> Page[StoredTier]:
        """The five definitions in rank order, with their customer counts."""
        limit = clamp_page_size(page_size)
        after = self._page_tokens.decode(page_token, query={})
        ranked = sorted(await repository.tiers(uow, with_counts=True), key=lambda t: TIER_RANK[t.tier])
        chosen = [t for t in ranked if after is None or TIER_RANK[t.tier] > int(after[0])][:limit + 1]
        return self._page_tokens.page(chosen, limit=limit, key=lambda t: [TIER_RANK[t.tier]], query={})

    # --- tier definitions ---------------------------------------------------------------------

    async def update_tier(self, *, uow: UnitOfWork, tier: ValueTier, changes: TierDefinition, paths: Sequence[str],
                          etag: str, actor: Principal) -> StoredTier:
        """Change the fields of `paths`; the whole set of definitions must stay valid. Customers
        move in the next scheduled run, which the change itself calls for."""
        v = Violations()
        v.update_mask(paths, UPDATABLE)
        v.raise_if_any()
        current = await load_for_update(repository.tier_for_update(uow, tier), etag=etag,
                                        not_found=lambda: _tier_not_found(tier))
        merged = _merge(current.definition, changes, paths)
        others = {t.tier: t.definition for t in await repository.tiers(uow)}
        _validate(TierThresholds(**{key: merged if t is tier else others[t] for t, key in TIER_KEYS.items()}), tier)
        saved = await repository.save_tier(uow, tier, merged, updater=actor.subject)
        await self._outbox.append(uow, resource_name=saved.name, change_type=UPDATED,
                                  payload=self._tier_message(saved), actor=actor.subject)
        log.info("value_tier_updated", tier=TIER_KEYS[tier], version=saved.version)
        return saved

    # --- activity and lifecycle thresholds ---------------------------------------------------

    async def get_thresholds(self, *, uow: UnitOfWork) -> StoredThresholds:
        return await repository.thresholds(uow)

    async def update_thresholds(self, *, uow: UnitOfWork, changes: Thresholds, paths: Sequence[str], etag: str,
                                actor: Principal) -> StoredThresholds:
        """Change the fields of `paths` (a whole group or single fields); customers move in the
        next scheduled run, which the change calls for, and on their next change."""
        v = Violations()
        v.update_mask(paths, THRESHOLD_PATHS)
        v.raise_if_any()
        current = await load_for_update(repository.thresholds(uow, for_update=True), etag=etag,
                                        not_found=lambda: NotFound("classification thresholds not found"))
        activity, lifecycle = _merge_thresholds(current, changes, paths)
        checked = Violations()
        rules.validate_activity(activity, checked, prefix="thresholds.activity.")
        rules.validate_lifecycle(lifecycle, checked, prefix="thresholds.lifecycle.")
        checked.raise_if_any()
        saved = await repository.save_thresholds(uow, activity, lifecycle, updater=actor.subject)
        await self._outbox.append(uow, resource_name=saved.name, change_type=UPDATED,
                                  payload=self._thresholds_message(saved), actor=actor.subject)
        log.info("classification_thresholds_updated", version=saved.version)
        return saved

    # --- classifying --------------------------------------------------------------------------

    async def on_change(self, connection: AsyncConnection, event: change_event_pb2.ChangeEvent) -> None:
        """Reclassify the event's customer in the feed consumer's transaction."""
        customer_id = customer_id_of(event.resource_name)
        if customer_id is not None:
            await self.classify(connection, [customer_id], boundaries=await repository.latest_boundaries(connection))

    async def classify(self, connection: AsyncConnection, customer_ids: Sequence[str], *,
                       boundaries: RfmBoundaries | None, skip_locked: bool = False) -> list[Classification]:
        """Classify the customers (those in the population) and store the results; publish moves.
        With `skip_locked`, customers whose rows another transaction holds are left out."""
        found = await repository.inputs(connection, customer_ids, skip_locked=skip_locked)
        if not found:
            return []
        stored = {t.tier: t.definition for t in await repository.tiers(connection)}
        limits = await repository.thresholds(connection)
        thresholds = Thresholds(tiers=TierThresholds(**{key: stored[t] for t, key in TIER_KEYS.items()}),
                                activity=limits.activity, lifecycle=limits.lifecycle)
        lifetime = await self._lifetime_values_of(connection, [i.customer_id for i in found])
        now = self._clock()
        results = [rules.classify(i, thresholds=thresholds, boundaries=boundaries,
                                  expected_lifetime_value_minor=lifetime.get(i.customer_id), now=now) for i in found]
        await repository.write(connection, results)
        moved = [(c, i.current) for c, i in zip(results, found, strict=True) if c.moved_from(i.current)]
        if moved:
            await self._outbox.append_many(connection, [
                (f"customers/{c.customer_id}", UPDATED,
                 self._classification_message(c, thresholds.tiers.definition(c.tier.tier).service))
                for c, _ in moved], actor=ACTOR, resource_type=CLASSIFICATION_TYPE)
        return results

    async def _lifetime_values_of(self, connection: AsyncConnection, customer_ids: list[str]) -> dict[str, int]:
        """3-year expected lifetime values in minor units, under the latest fitted model."""
        if self._lifetime_values is None:
            return {}
        model = await self._lifetime_values.latest(connection)
        if model is None:
            return {}
        valued = await self._lifetime_values.values_under(
            connection, model, customer_ids, today=self._clock().date(),
            horizon_days=clv_rules.CLASSIFICATION_HORIZON_DAYS,
            annual_discount_rate=model.settings.annual_discount_rate)
        return {summary.customer_id: round(value.clv * MINOR_PER_UNIT) for summary, value in valued}

    async def run(self, *, db: Database, batch_size: int) -> int:
        """One scheduled run over every customer; how many were classified."""
        async with db.unit_of_work() as uow:
            version = await repository.definitions_version(uow)
            scored = await repository.scored_count(uow)
            boundaries = await repository.cuts(uow, rules.cut_positions(scored))
            run_id = await repository.start_run(uow, scored=scored, boundaries=boundaries,
                                                definitions_version=version)
        classified, after = 0, ""
        while True:
            async with db.unit_of_work() as uow:
                batch = await repository.customer_ids_after(uow, after, batch_size)
                if not batch:
                    await repository.finish_run(uow, run_id, classified=classified)
                    break
                # Rows the feed consumer is changing are skipped rather than waited for (its
                # transaction locks customers in feed order, a batch in id order: waiting could
                # deadlock); that change reclassifies them against these cuts anyway.
                classified += len(await self.classify(uow, batch, boundaries=boundaries, skip_locked=True))
            after = batch[-1]
        log.info("classification_run_finished", run_id=run_id, customers=classified, scored=scored)
        return classified


class ClassificationSchedule:
    """Runs `Classifications.run` in the background when due: the last finished run is older
    than `interval`, or a tier definition changed since it started. One replica runs at a time
    (a session advisory lock); the others find the run fresh afterwards."""

    LOCK_KEY = 0x53454743_4C415353  # "SEGCLASS"

    def __init__(self, *, db: Database, classifications: Classifications, interval: timedelta,
                 check_seconds: float, batch_size: int, clock: Clock = utc_now) -> None:
        self._db = db
        self._classifications = classifications
        self._interval = interval
        self._check_seconds = check_seconds
        self._batch_size = batch_size
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="classification-schedule")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            # First wait: a starting replica lets the read model catch up before a run.
            await asyncio.sleep(self._check_seconds)
            try:
                await self.run_if_due()
            except Exception as exc:  # the database may be briefly unreachable: try at the next check
                log.warning("classification_run_failed", error_type=type(exc).__name__)

    async def due(self) -> bool:
        async with self._db.unit_of_work(read_only=True) as uow:
            last = await repository.last_finished_run(uow)
            version = await repository.definitions_version(uow)
        if last is None:
            return True
        finished_at, classified_with = last
        return version > classified_with or self._clock() - finished_at >= self._interval

    async def run_if_due(self) -> bool:
        if not await self.due():
            return False
        async with self._db.raw() as lock:
            if not await lock.fetchval("SELECT pg_try_advisory_lock($1)", self.LOCK_KEY):
                return False
            try:
                if await self.due():  # another replica may have just finished one
                    await self._classifications.run(db=self._db, batch_size=self._batch_size)
                    return True
                return False
            finally:
                await lock.execute("SELECT pg_advisory_unlock($1)", self.LOCK_KEY)


def _merge(current: TierDefinition, changes: TierDefinition, paths: Sequence[str]) -> TierDefinition:
    merged, service = current, current.service
    for path in paths:
        if path == "service_standard":
            service = changes.service
        elif path.startswith("service_standard."):
            name = SERVICE_PATHS[path.removeprefix("service_standard.")]
            service = dataclasses.replace(service, **{name: getattr(changes.service, name)})
        else:
            name = TIER_PATHS[path]
            merged = dataclasses.replace(merged, **{name: getattr(changes, name)})
    merged = dataclasses.replace(merged, service=service)
    # The contract has no unset int: 0 products without the inflow criterion means "not a criterion".
    if merged.min_inflow_90d_minor is None and merged.min_product_count == 0:
        merged = dataclasses.replace(merged, min_product_count=None)
    return merged


def _merge_thresholds(current: StoredThresholds, changes: Thresholds, paths: Sequence[str]
                      ) -> tuple[ActivityThresholds, LifecycleThresholds]:
    activity, lifecycle = current.activity, current.lifecycle
    for path in paths:
        group, _, name = path.partition(".")
        if group == "activity":
            names = [name] if name else sorted(ACTIVITY_PATHS)
            activity = dataclasses.replace(activity, **{n: getattr(changes.activity, n) for n in names})
        else:
            names = [name] if name else sorted(LIFECYCLE_PATHS)
            fields = ["churn_max_aum_minor" if n == "churn_max_aum" else n for n in names]
            lifecycle = dataclasses.replace(lifecycle, **{f: getattr(changes.lifecycle, f) for f in fields})
    return activity, lifecycle


def _validate(tiers: TierThresholds, tier: ValueTier) -> None:
    """Every violation of the definitions, named as the request names its fields
    (`value_tier.<field>`); an order broken with a neighbour is named on the changed tier."""
    checked = Violations()
    rules.validate_tiers(tiers, checked, prefix="tiers.")
    try:
        checked.raise_if_any()
    except InvalidArgument as error:
        own = f"tiers.{TIER_KEYS[tier]}."
        renamed = Violations()
        for violation in error.violations:
            if violation.field.startswith(own):
                field = violation.field.removeprefix(own)
                unit = " (hours)" if field.endswith("complaint_response_hours") else ""
                renamed.add(f"value_tier.{_REQUEST_FIELDS.get(field, field)}", violation.description + unit)
            else:  # a neighbour's threshold is now out of order with this one
                renamed.add("value_tier.min_average_aum", f"{violation.field} {violation.description}")
        renamed.raise_if_any()


def _tier_not_found(tier: ValueTier) -> NotFound:
    return NotFound(f"value tier {tier.name.lower()} not found", reason="VALUE_TIER_NOT_FOUND")
