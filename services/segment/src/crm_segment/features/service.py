"""The read model's use cases: apply one profile change event, and say how current the model is.

`apply` runs inside the feed consumer's transaction (crmkit.feed_consumer), which stores the
cursor with the effect, so each event takes effect once; the position guards of the repository
make a replayed or out-of-order event change nothing on top of that.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_segment.features import feed, rules
from crm_segment.features.model import (
    ConsentDecision,
    ContactPreferences,
    CustomerRecord,
    DerivedFeatures,
    HoldingRecord,
    ReadModelStatus,
    Stamp,
    TransactionRecord,
)
from crm_segment.features.repository import FeatureRepository
from crmkit.db import Database
from crmkit.logs import get_logger
from crmkit.peer_feed import lag_seconds

log = get_logger("crm.segment.features")


class FeatureReadModel:
    def __init__(self, *, repository: FeatureRepository) -> None:
        self._repository = repository
        # Set when profile answered CURSOR_EXPIRED: events were purged before this model saw
        # them, so it must be rebuilt from profile's List RPCs.
        self.needs_rebuild = False

    async def apply(self, connection: AsyncConnection, event: feed.ChangeEvent) -> bool:
        """Apply one event of profile's feed; False when it changed nothing (an unfollowed type,
        a replay, or an event older than what the model holds)."""
        change = feed.decode(event)
        repository = self._repository
        match change:
            case CustomerRecord():
                return await repository.put_customer(connection, change)
            case DerivedFeatures():
                written = await repository.put_features(connection, change)
                if written:  # PAYROLL among the product categories follows payroll_active
                    await self._fold_holdings(connection, change.stamp)
                return written
            case HoldingRecord():
                written = await repository.put_holding(connection, change)
                if written:
                    await self._fold_holdings(connection, change.stamp)
                return written
            case ConsentDecision():
                written = await repository.put_consent(connection, change)
                if written:
                    decisions = await repository.consents(connection, change.stamp.customer_id)
                    channels = rules.consented_channels(decisions, now=datetime.now(UTC))
                    await repository.put_folded(connection, change.stamp, {"marketing_channels": channels})
                return written
            case ContactPreferences():
                return await repository.put_preferences(connection, change)
            case TransactionRecord():
                return await repository.put_transaction(connection, change)
            case None:
                return False

    async def _fold_holdings(self, connection: AsyncConnection, stamp: Stamp) -> None:
        holdings = await self._repository.open_holdings(connection, stamp.customer_id)
        payroll = await self._repository.payroll_active(connection, stamp.customer_id)
        today = datetime.now(UTC).date()
        await self._repository.put_folded(connection, stamp, {
            "product_categories": rules.product_categories((t for t, _ in holdings), payroll_active=payroll),
            "next_maturity_on": rules.next_maturity((m for _, m in holdings), today=today),
        })

    async def status(self, *, db: Database) -> ReadModelStatus:
        async with db.unit_of_work(read_only=True) as connection:
            newest = await self._repository.newest_event_at(connection)
            count = await self._repository.count(connection)
        return ReadModelStatus(newest_event_at=newest, lag_seconds=lag_seconds(newest, now=datetime.now(UTC)),
                               needs_rebuild=self.needs_rebuild, customer_count=count)

    def expired(self, *, feed_name: str) -> None:
        log.error("feature_feed_cursor_expired", feed=feed_name, action="rebuild from profile's List RPCs")
        self.needs_rebuild = True
