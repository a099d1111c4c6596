"""What a recomputation needs wherever it runs: the settings, the writer that recomputes and
publishes inside its caller's unit of work, and the batch run's job. Shared by `service` (in the
service process) and `worker` (in a worker process), so neither imports the other's module.

The writer never opens, commits or rolls back: every caller hands it `uow=` (crmkit.db's rule),
the API's unit of work, the refresher's per batch, or the worker's per page.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from google.protobuf.message import Message

from crm_profile.features import rules
from crm_profile.features.model import CREATED, DELETED, UPDATED, Change, CustomerFeatures, RecomputeOutcome
from crm_profile.features.repository import FeatureRepository
from crm_profile.holdings import rules as holding_rules
from crmkit.db import UnitOfWork
from crmkit.outbox import ChangeType, Outbox

FEATURES_TYPE = "crm.profile.v1.CustomerFeatures"
_CHANGE_TYPES = {CREATED: ChangeType.CHANGE_TYPE_CREATED, UPDATED: ChangeType.CHANGE_TYPE_UPDATED}

# Made by the API layer, so this module stays free of generated protos.
FeaturePayload = Callable[[CustomerFeatures], Message]


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    reporting_currency: str = "CNY"
    # Units of the reporting currency per unit of another (the holdings' reference rates).
    rates: Mapping[str, Decimal] = dataclasses.field(default_factory=dict)
    rfm_window_days: int = rules.DEFAULT_WINDOW_DAYS
    # Customers per statement (and per transaction) of the refresher and the batch run.
    batch_size: int = 1000
    refresh_seconds: float = 1.0

    def __post_init__(self) -> None:
        holding_rules.check_rates(self.reporting_currency, self.rates)
        rules.check_window(self.rfm_window_days)

    @functools.cached_property
    def currency(self) -> rules.Currency:
        return rules.Currency.of(self.reporting_currency, self.rates)

    def windows(self, now: datetime | None = None) -> rules.Windows:
        return rules.Windows.of(now or datetime.now(UTC), rfm_window_days=self.rfm_window_days)


class FeatureWriter:
    """Recomputes features inside the caller's transaction and publishes the material changes.
    Holds no connection: the batch worker process builds its own from the same parts."""

    def __init__(self, *, repository: FeatureRepository, outbox: Outbox, settings: FeatureSettings,
                 feed_payload: FeaturePayload) -> None:
        self._repository = repository
        self._outbox = outbox
        self.settings = settings
        self._feed_payload = feed_payload

    async def recompute(self, *, uow: UnitOfWork, customer_ids: Sequence[str], actor: str,
                        locked: bool = False, now: datetime | None = None) -> RecomputeOutcome:
        """Recompute these customers (at most a batch; inactive ones lose their features), in the
        caller's transaction, with a change event for each material change. `locked`: the caller
        holds the customers' row locks already (it changed their holdings)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return RecomputeOutcome(0, 0)
        if not locked:
            await self._repository.lock(uow, ids)
        changes = await self._repository.recompute(uow, ids, windows=self.settings.windows(now),
                                                   currency=self.settings.currency)
        return await self.publish(uow=uow, changes=changes, actor=actor)

    async def publish(self, *, uow: UnitOfWork, changes: Sequence[Change], actor: str) -> RecomputeOutcome:
        upserts = [(f"customers/{c.customer_id}/features", _CHANGE_TYPES[c.published], self._feed_payload(c.features))
                   for c in changes if c.features is not None and c.published is not None]
        deletions = [(f"customers/{c.customer_id}/features", ChangeType.CHANGE_TYPE_DELETED, None)
                     for c in changes if c.published == DELETED]
        await self._outbox.append_many(uow, upserts, actor=actor, resource_type=FEATURES_TYPE)
        await self._outbox.append_many(uow, deletions, actor=actor, resource_type=FEATURES_TYPE)
        return RecomputeOutcome(customer_count=sum(1 for c in changes if c.features is not None),
                                changed_count=len(upserts) + len(deletions))

    async def mark(self, *, uow: UnitOfWork, customer_ids: Sequence[str]) -> None:
        """Have the refresher recompute these customers once the caller's transaction commits."""
        await self._repository.mark(uow, customer_ids)


@dataclasses.dataclass(frozen=True)
class RecomputeJob:
    """One batch run, as its worker process sees it (picklable values only)."""

    operation_id: uuid.UUID
    database_url: str
    customer_ids: tuple[str, ...]
    changed_since: datetime | None
    settings: FeatureSettings
    feed_payload: FeaturePayload
    actor: str
