"""All SQL about holdings. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.customers.tables import customer as c
from crm_profile.holdings import money
from crm_profile.holdings.model import STATUS_CLOSED, CustomerRef, Holding, HoldingFilter, OpenState
from crm_profile.holdings.tables import holding as t

_PLAIN_FIELDS = ("product_code", "product_type", "currency", "balance_time", "open_date", "maturity_date", "status",
                 "close_date", "source_system")


def _to_row(holding: Holding) -> dict[str, Any]:
    assert holding.balance is not None, "validated before it is stored"
    row = {field: getattr(holding, field) for field in _PLAIN_FIELDS}
    row["balance_minor"] = money.to_minor(holding.balance)
    reporting = holding.reporting_balance
    row["reporting_currency"] = reporting.currency_code if reporting is not None else None
    row["reporting_balance_minor"] = money.to_minor(reporting) if reporting is not None else None
    return row


def _from_row(row: RowMapping) -> Holding:
    reporting = (money.from_minor(row["reporting_currency"], row["reporting_balance_minor"])
                 if row["reporting_currency"] is not None else None)
    return Holding(
        customer_id=row["customer_id"], holding_id=row["holding_id"],
        **{field: row[field] for field in _PLAIN_FIELDS},
        balance=money.from_minor(row["currency"], row["balance_minor"]),
        reporting_balance=reporting, version=row["version"], created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class HoldingRepository:
    async def customer(self, session: AsyncConnection, customer_id: str, *, lock: bool = False) -> CustomerRef | None:
        """The holding's customer; with `lock`, its row is locked so that changes to one customer's
        holdings (and to its relationship end) happen one at a time."""
        query = sa.select(c.c.customer_id, c.c.relationship_manager_id, c.c.onboarded_on, c.c.closed_on, c.c.state,
                          c.c.merged_into).where(c.c.customer_id == customer_id)
        if lock:
            query = query.with_for_update(key_share=True)  # FOR NO KEY UPDATE: holdings' FK checks still pass
        row = (await session.execute(query)).first()
        return CustomerRef(**row._mapping) if row is not None else None

    async def insert(self, session: AsyncConnection, holding: Holding) -> Holding | None:
        """Insert; None when the customer already has a holding with that id."""
        statement = (
            pg.insert(t)
            .values(customer_id=holding.customer_id, holding_id=holding.holding_id, **_to_row(holding))
            .on_conflict_do_nothing(index_elements=[t.c.customer_id, t.c.holding_id])
            .returning(t)
        )
        row = (await session.execute(statement)).first()
        return _from_row(row._mapping) if row is not None else None

    async def get(self, session: AsyncConnection, customer_id: str, holding_id: str, *,
                  for_update: bool = False) -> Holding | None:
        query = sa.select(t).where(t.c.customer_id == customer_id, t.c.holding_id == holding_id)
        if for_update:
            query = query.with_for_update()
        row = (await session.execute(query)).first()
        return _from_row(row._mapping) if row is not None else None

    async def update(self, session: AsyncConnection, holding: Holding) -> Holding:
        statement = (
            sa.update(t)
            .where(t.c.customer_id == holding.customer_id, t.c.holding_id == holding.holding_id)
            .values(**_to_row(holding), version=t.c.version + 1, updated_at=sa.func.now())
            .returning(t)
        )
        return _from_row((await session.execute(statement)).one()._mapping)

    async def delete(self, session: AsyncConnection, customer_id: str, holding_id: str) -> None:
        await session.execute(sa.delete(t).where(t.c.customer_id == customer_id, t.c.holding_id == holding_id))

    async def move(self, session: AsyncConnection, *, from_customer: str, to_customer: str,
                   holding_ids: Sequence[str] | None = None) -> list[tuple[Holding, Holding]]:
        """Re-home `from_customer`'s holdings (all of them, or those named) to `to_customer`, as a
        merge and its unmerge do. A holding whose id `to_customer` already has stays where it is:
        the same account recorded under both customers, of which the target's copy stands.
        Returns (before, after) per moved holding, in holding id order."""
        theirs = sa.select(t.c.holding_id).where(t.c.customer_id == to_customer).scalar_subquery()
        query = (sa.select(t).where(t.c.customer_id == from_customer, t.c.holding_id.not_in(theirs))
                 .order_by(t.c.holding_id).with_for_update())
        if holding_ids is not None:
            query = query.where(t.c.holding_id.in_(list(holding_ids)))
        before = [_from_row(row._mapping) for row in (await session.execute(query)).all()]
        if not before:
            return []
        statement = (
            sa.update(t)
            .where(t.c.customer_id == from_customer, t.c.holding_id.in_([h.holding_id for h in before]))
            .values(customer_id=to_customer, version=t.c.version + 1, updated_at=sa.func.now())
            .returning(t)
        )
        after = {row.holding_id: _from_row(row._mapping) for row in (await session.execute(statement)).all()}
        return [(h, after[h.holding_id]) for h in before]

    async def open_state(self, session: AsyncConnection, customer_id: str, *, also: Sequence[str] = ()) -> OpenState:
        """The holdings of the customer (and of the customers `also` named, taken together)."""
        closed = t.c.status == STATUS_CLOSED
        row = (await session.execute(
            sa.select(sa.func.count(),
                      sa.func.count().filter(sa.not_(closed)),
                      sa.func.max(t.c.close_date).filter(closed))
            .where(t.c.customer_id.in_([customer_id, *also])))).one()
        return OpenState(holdings=row[0], open_holdings=row[1], last_close_date=row[2])

    async def page(
        self, session: AsyncConnection, *, customer_id: str | None, relationship_manager_id: str | None,
        narrowing: HoldingFilter, after: tuple[str, str] | None, limit: int,
    ) -> Sequence[Holding]:
        """Holdings in (customer id, holding id) order: one customer's (`customer_id`), or every
        customer's, or those of one relationship manager's book."""
        query = sa.select(t).order_by(t.c.customer_id, t.c.holding_id).limit(limit)
        if customer_id is not None:
            query = query.where(t.c.customer_id == customer_id)
        if relationship_manager_id is not None:
            query = query.join(c, c.c.customer_id == t.c.customer_id).where(
                c.c.relationship_manager_id == relationship_manager_id)
        if after is not None:
            query = query.where(sa.tuple_(t.c.customer_id, t.c.holding_id) > sa.tuple_(*after))
        if narrowing.product_types:
            query = query.where(t.c.product_type.in_(narrowing.product_types))
        if narrowing.statuses:
            query = query.where(t.c.status.in_(narrowing.statuses))
        if narrowing.maturity_from is not None:
            query = query.where(t.c.maturity_date >= narrowing.maturity_from)
        if narrowing.maturity_to is not None:
            query = query.where(t.c.maturity_date <= narrowing.maturity_to)
        return [_from_row(row._mapping) for row in (await session.execute(query)).all()]
