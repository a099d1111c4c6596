"""All SQL about the customer read model. Never commits: the caller's unit of work (or the feed
consumer's transaction) does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_risk.customers import rules
from crm_risk.customers.model import AgeChange, CustomerChange, CustomerRecord, Stamp
from crm_risk.customers.tables import customer as t
from crm_risk.customers.tables import feed_cursor
from crmkit.db import UnitOfWork


class CustomerFactsSource(Protocol):
    """Where decisions read customers from (the read model table; a test may give another)."""

    async def find(self, uow: UnitOfWork, customer_ids: Sequence[str], *, today: date
                   ) -> dict[str, CustomerRecord]: ...


def _from_row(row: Any, today: date) -> CustomerRecord:
    facts = rules.facts(risk_tolerance=row.risk_tolerance, kyc_status=row.kyc_status, vulnerable=row.vulnerable,
                        assessment_expiry=row.assessment_expiry, age_years=row.age_years, age_on=row.age_on,
                        birth_year=row.birth_year, today=today, credit_overdue=row.credit_overdue)
    values = rules.scoring_values(row.feature_values, age_years=facts.age_years)
    return CustomerRecord(
        customer_id=row.customer_id,
        facts=facts, relationship_manager_id=row.relationship_manager_id, branch_id=row.branch_id,
        data_as_of=row.data_as_of, feature_values=values)


def scoring_values(row: Any, today: date) -> dict[str, str | float]:
    """A row's scoring inputs (`rules.scoring_values`); the row has the table's `feature_values`,
    `age_years`, `age_on` and `birth_year`."""
    return rules.scoring_values(row.feature_values, age_years=rules.current_age(
        age_years=row.age_years, age_on=row.age_on, birth_year=row.birth_year, today=today))


# The columns `scoring_values` reads.
SCORING_COLUMNS = (t.c.feature_values, t.c.age_years, t.c.age_on, t.c.birth_year)


class CustomerRepository:
    async def find(self, uow: UnitOfWork, customer_ids: Sequence[str], *, today: date
                   ) -> dict[str, CustomerRecord]:
        """The live customers of `customer_ids` the read model holds, by id (one query for a batch)."""
        if not customer_ids:
            return {}
        rows = (await uow.execute(sa.select(t).where(t.c.customer_id.in_(list(customer_ids)), ~t.c.removed))).all()
        return {row.customer_id: _from_row(row, today) for row in rows}

    async def put_customer(self, uow: UnitOfWork, change: CustomerChange) -> bool:
        values = {"removed": change.removed, "risk_tolerance": change.risk_tolerance,
                  "kyc_status": change.kyc_status, "birth_year": change.birth_year,
                  "relationship_manager_id": change.relationship_manager_id, "branch_id": change.branch_id,
                  "assessment_expiry": change.assessment_expiry, "vulnerable": change.vulnerable,
                  "credit_overdue": change.credit_overdue,
                  "feature_values": change.feature_values, "onboarded_on": change.onboarded_on,
                  "closed_on": change.closed_on}
        if change.removed:  # keep nothing about a customer profile no longer holds
            values.update(risk_tolerance=0, kyc_status=0, birth_year=None, assessment_expiry=None, vulnerable=False,
                          credit_overdue=False, feature_values={}, onboarded_on=None, closed_on=None)
        return await _upsert_part(uow, change.stamp, "customer_position", values)

    async def put_age(self, uow: UnitOfWork, change: AgeChange) -> bool:
        return await _upsert_part(uow, change.stamp, "features_position", {
            "age_years": change.age_years, "age_on": change.age_on, "aum": change.aum,
            "average_aum_90d": change.average_aum_90d, "aum_change_90d": change.aum_change_90d,
            "product_count": change.product_count if change.computed_at is not None else None,
            "last_activity_at": change.last_activity_at, "features_computed_at": change.computed_at})

    async def newest_event_at(self, uow: UnitOfWork) -> datetime | None:
        return await uow.scalar(sa.select(sa.func.max(feed_cursor.c.event_at)))

    async def count(self, uow: UnitOfWork) -> int:
        return int(await uow.scalar(sa.select(sa.func.count()).select_from(t).where(~t.c.removed)) or 0)


async def _upsert_part(uow: UnitOfWork, stamp: Stamp, position_column: str, values: Mapping[str, Any]) -> bool:
    """Write one part of a customer's row unless the row already holds a newer version of it."""
    insert = pg.insert(t).values(customer_id=stamp.customer_id, data_as_of=stamp.occurred_at,
                                 **{position_column: stamp.position}, **values)
    stored = t.c[position_column]
    written = await uow.execute(insert.on_conflict_do_update(
        index_elements=[t.c.customer_id],
        set_={**{k: insert.excluded[k] for k in values}, position_column: insert.excluded[position_column],
              "data_as_of": sa.func.greatest(t.c.data_as_of, insert.excluded.data_as_of),
              "updated_at": sa.func.now()},
        where=sa.or_(stored.is_(None), stored < insert.excluded[position_column])).returning(t.c.customer_id))
    return written.first() is not None
