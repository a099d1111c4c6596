"""All SQL of the feature read model. Statements run in the caller's transaction (the feed
consumer's, which also stores the cursor); nothing here commits.

Every write is an upsert guarded by the feed position of the part it writes (see tables.py), so
applying an event twice, or an older one after a newer one, leaves the row as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_segment.features.model import (
    ConsentDecision,
    ContactPreferences,
    CustomerRecord,
    DerivedFeatures,
    HoldingRecord,
    Stamp,
    TransactionRecord,
)
from crm_segment.features.tables import customer_feature, feature_consent, feature_holding, feature_transaction_day

FEATURE_COLUMNS = (
    "reporting_currency", "aum", "average_aum_90d", "aum_change_90d", "product_count", "product_type_count",
    "tenure_days", "recency_days", "frequency", "monetary", "login_count_30d", "visit_count_30d",
    "transaction_count_30d", "transaction_count_90d", "active_channel_count_90d", "days_since_last_activity",
    "last_activity_at", "age_years", "holdings_opened_90d", "holdings_closed_90d", "payroll_active",
    "features_computed_at", "rfm_window_days",
)
_CLEARED_FEATURES: dict[str, Any] = {**dict.fromkeys(FEATURE_COLUMNS), "reporting_currency": "",
                                     "payroll_active": False}
_CUSTOMER_COLUMNS = ("removed", "customer_type", "birth_year", "gender", "nationality", "kyc_status",
                     "risk_tolerance", "relationship_manager_id", "branch_id", "onboarded_on", "closed_on")

cf = customer_feature.c


class FeatureRepository:
    async def put_customer(self, connection: AsyncConnection, record: CustomerRecord) -> bool:
        values = {name: getattr(record, name) for name in _CUSTOMER_COLUMNS}
        return await _upsert_part(connection, record.stamp, "customer_position", values)

    async def put_features(self, connection: AsyncConnection, change: DerivedFeatures) -> bool:
        values = dict(change.values) if change.values is not None else dict(_CLEARED_FEATURES)
        return await _upsert_part(connection, change.stamp, "features_position", values)

    async def put_preferences(self, connection: AsyncConnection, change: ContactPreferences) -> bool:
        values = {"do_not_contact": change.do_not_contact, "do_not_contact_until": change.do_not_contact_until}
        return await _upsert_part(connection, change.stamp, "preferences_position", values)

    async def put_holding(self, connection: AsyncConnection, holding: HoldingRecord) -> bool:
        h = feature_holding
        values = {"customer_id": holding.stamp.customer_id, "holding_id": holding.holding_id,
                  "position": holding.stamp.position, "product_type": holding.product_type,
                  "open": holding.open, "maturity_on": holding.maturity_on}
        insert = pg.insert(h).values(**values)
        written = await connection.execute(insert.on_conflict_do_update(
            index_elements=[h.c.customer_id, h.c.holding_id],
            set_={k: insert.excluded[k] for k in ("position", "product_type", "open", "maturity_on")},
            where=h.c.position < insert.excluded.position).returning(h.c.holding_id))
        return written.first() is not None

    async def put_transaction(self, connection: AsyncConnection, record: TransactionRecord) -> bool:
        """Add a transaction to its day's total, unless the customer's row already holds it (the
        feed is in order, so any event at or before the newest one folded in was folded in)."""
        if not await _upsert_part(connection, record.stamp, "transactions_position", {}):
            return False
        d = feature_transaction_day
        insert = pg.insert(d).values(customer_id=record.stamp.customer_id, day=record.day, amount=record.amount,
                                     transaction_count=1)
        await connection.execute(insert.on_conflict_do_update(
            index_elements=[d.c.customer_id, d.c.day],
            set_={"amount": d.c.amount + insert.excluded.amount,
                  "transaction_count": d.c.transaction_count + insert.excluded.transaction_count}))
        return True

    async def open_holdings(self, connection: AsyncConnection, customer_id: str) -> list[tuple[int, date | None]]:
        h = feature_holding.c
        rows = await connection.execute(sa.select(h.product_type, h.maturity_on)
                                        .where(h.customer_id == customer_id, h.open))
        return [(row.product_type, row.maturity_on) for row in rows]

    async def put_consent(self, connection: AsyncConnection, decision: ConsentDecision) -> bool:
        c = feature_consent
        insert = pg.insert(c).values(customer_id=decision.stamp.customer_id, channel=decision.channel,
                                     position=decision.stamp.position, opted_in=decision.opted_in,
                                     effective_at=decision.effective_at, expire_at=decision.expire_at)
        # The later decision wins; of two equally effective, the later written.
        newer = sa.tuple_(c.c.effective_at, c.c.position) < sa.tuple_(insert.excluded.effective_at,
                                                                        insert.excluded.position)
        written = await connection.execute(insert.on_conflict_do_update(
            index_elements=[c.c.customer_id, c.c.channel],
            set_={k: insert.excluded[k] for k in ("position", "opted_in", "effective_at", "expire_at")},
            where=newer).returning(c.c.channel))
        return written.first() is not None

    async def consents(self, connection: AsyncConnection, customer_id: str) -> list[tuple[int, bool, datetime | None]]:
        c = feature_consent.c
        rows = await connection.execute(sa.select(c.channel, c.opted_in, c.expire_at)
                                        .where(c.customer_id == customer_id))
        return [(row.channel, row.opted_in, row.expire_at) for row in rows]

    async def payroll_active(self, connection: AsyncConnection, customer_id: str) -> bool:
        return bool(await connection.scalar(sa.select(cf.payroll_active).where(cf.customer_id == customer_id)))

    async def put_folded(self, connection: AsyncConnection, stamp: Stamp, values: Mapping[str, Any]) -> None:
        """Columns folded from other rows (holdings, consents): always current, no position of their own."""
        insert = pg.insert(customer_feature).values(customer_id=stamp.customer_id,
                                                    features_as_of=stamp.occurred_at, **values)
        await connection.execute(insert.on_conflict_do_update(
            index_elements=[cf.customer_id],
            set_={**values, "features_as_of": sa.func.greatest(cf.features_as_of, insert.excluded.features_as_of),
                  "updated_at": sa.func.now()}))

    async def newest_event_at(self, connection: AsyncConnection) -> datetime | None:
        value: datetime | None = await connection.scalar(sa.select(sa.func.max(cf.features_as_of)))
        return value

    async def count(self, connection: AsyncConnection) -> int:
        return int(await connection.scalar(sa.select(sa.func.count()).select_from(customer_feature)) or 0)

    async def clear(self, connection: AsyncConnection) -> None:
        """Empty the model before a rebuild (segment membership stays: re-evaluation moves it)."""
        for table in (feature_consent, feature_holding, customer_feature):
            await connection.execute(sa.delete(table))


async def _upsert_part(connection: AsyncConnection, stamp: Stamp, position_column: str,
                       values: Mapping[str, Any]) -> bool:
    """Write one part of a customer's row unless the row already holds a newer version of it."""
    insert = pg.insert(customer_feature).values(customer_id=stamp.customer_id, features_as_of=stamp.occurred_at,
                                                **{position_column: stamp.position}, **values)
    stored = cf[position_column]
    written = await connection.execute(insert.on_conflict_do_update(
        index_elements=[cf.customer_id],
        set_={**{k: insert.excluded[k] for k in values}, position_column: insert.excluded[position_column],
              "features_as_of": sa.func.greatest(cf.features_as_of, insert.excluded.features_as_of),
              "updated_at": sa.func.now()},
        where=sa.or_(stored.is_(None), stored < insert.excluded[position_column])).returning(cf.customer_id))
    return written.first() is not None
