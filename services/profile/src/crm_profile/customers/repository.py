"""All SQL about customers. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.customers.model import Customer
from crm_profile.customers.privacy import PersonalDataVault
from crm_profile.customers.tables import customer as t

_PLAIN_FIELDS = (
    "customer_type", "birth_date", "gender", "nationality", "id_type", "id_issuing_country", "id_expires_on",
    "occupation", "kyc_status", "risk_tolerance", "relationship_manager_id", "branch_id", "onboarded_on",
    "closed_on", "preferred_language",
)


_SELECT_BY_ID = "SELECT * FROM customer WHERE customer_id = $1"


class CustomerRepository:
    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault

    def _to_row(self, customer: Customer) -> dict[str, Any]:
        row = {field: getattr(customer, field) for field in _PLAIN_FIELDS}
        row.update(self._vault.seal(customer))
        return row

    def _from_row(self, row: Mapping[str, Any]) -> Customer:
        return Customer(
            customer_id=row["customer_id"],
            **{field: row[field] for field in _PLAIN_FIELDS},
            **self._vault.open(row),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def insert(self, session: AsyncConnection, customer: Customer) -> Customer | None:
        """Insert; None when the customer id is taken."""
        statement = (
            pg.insert(t)
            .values(customer_id=customer.customer_id, **self._to_row(customer))
            .on_conflict_do_nothing(index_elements=[t.c.customer_id])
            .returning(t)
        )
        row = (await session.execute(statement)).first()
        return self._from_row(row._mapping) if row is not None else None

    async def get(self, session: AsyncConnection, customer_id: str, *, for_update: bool = False) -> Customer | None:
        query = sa.select(t).where(t.c.customer_id == customer_id)
        if for_update:
            query = query.with_for_update()
        row = (await session.execute(query)).first()
        return self._from_row(row._mapping) if row is not None else None

    async def fetch(self, connection: asyncpg.Connection, customer_id: str) -> Customer | None:
        """The hot read path (GetCustomer): hand-written SQL on a raw connection, no transaction."""
        row = await connection.fetchrow(_SELECT_BY_ID, customer_id)
        return self._from_row(row) if row is not None else None

    async def update(self, session: AsyncConnection, customer: Customer) -> Customer:
        statement = (
            sa.update(t)
            .where(t.c.customer_id == customer.customer_id)
            .values(**self._to_row(customer), version=t.c.version + 1, updated_at=sa.func.now())
            .returning(t)
        )
        return self._from_row((await session.execute(statement)).one()._mapping)

    async def delete(self, session: AsyncConnection, customer_id: str) -> None:
        await session.execute(sa.delete(t).where(t.c.customer_id == customer_id))

    async def page(
        self, session: AsyncConnection, *, after: str | None, limit: int, relationship_manager_id: str = "",
        branch_id: str = "",
    ) -> Sequence[Customer]:
        query = sa.select(t).order_by(t.c.customer_id).limit(limit)
        if after is not None:
            query = query.where(t.c.customer_id > after)
        if relationship_manager_id:
            query = query.where(t.c.relationship_manager_id == relationship_manager_id)
        if branch_id:
            query = query.where(t.c.branch_id == branch_id)
        return [self._from_row(row._mapping) for row in (await session.execute(query)).all()]
