"""All SQL about customers. Never commits: the caller's unit of work does."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.attributes.repository import VALUES_OF_CUSTOMER_SQL, decode_values, values_column
from crm_profile.customers.model import Customer, ExternalId
from crm_profile.customers.tables import customer as t
from crm_profile.customers.tables import customer_external_id as x
from crm_profile.customers.vault import PersonalDataVault

_PLAIN_FIELDS = (
    "customer_type", "birth_date", "gender", "nationality", "id_type", "id_issuing_country", "id_expires_on",
    "occupation", "kyc_status", "risk_tolerance", "relationship_manager_id", "branch_id", "onboarded_on",
    "closed_on", "preferred_language", "source_system", "state", "merged_into",
)


# A customer's external ids as one JSON array, read in the same statement as the customer row.
_EXTERNAL_IDS_OF_CUSTOMER_SQL = (
    "(SELECT json_agg(json_build_array(e.source_system, e.external_id) ORDER BY e.source_system, e.external_id)"
    " FROM customer_external_id e WHERE e.customer_id = customer.customer_id)"
)
_SELECT_BY_ID = (f"SELECT customer.*, {VALUES_OF_CUSTOMER_SQL} AS attribute_values,"  # noqa: S608 (constants)
                 f" {_EXTERNAL_IDS_OF_CUSTOMER_SQL} AS external_id_values FROM customer WHERE customer_id = $1")


# Built once, its values passed as parameters: a statement built per call with `.values()` makes
# SQLAlchemy coerce every value into a bound parameter and walk them all for the cache key.
_INSERT = pg.insert(t).on_conflict_do_nothing(index_elements=[t.c.customer_id]).returning(t)


def _with_extras(query: sa.Select[Any]) -> sa.Select[Any]:
    """A select of customer rows that also reads their attribute values and external ids."""
    return query.add_columns(
        values_column(), sa.literal_column(_EXTERNAL_IDS_OF_CUSTOMER_SQL).label("external_id_values"))


def _decode_external_ids(raw: str | bytes | list[Any] | None) -> tuple[ExternalId, ...]:
    if raw is None:
        return ()
    items = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return tuple(ExternalId(system, value) for system, value in items)


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
            attributes=decode_values(self._vault, row["customer_id"], row.get("attribute_values")),
            external_ids=_decode_external_ids(row.get("external_id_values")),
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def insert(self, session: AsyncConnection, customer: Customer) -> Customer | None:
        """Insert; None when the customer id is taken."""
        row = (await session.execute(_INSERT, {"customer_id": customer.customer_id, **self._to_row(customer)})).first()
        return self._from_row(row._mapping) if row is not None else None

    async def get(self, session: AsyncConnection, customer_id: str, *, for_update: bool = False) -> Customer | None:
        query = _with_extras(sa.select(t).where(t.c.customer_id == customer_id))
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
        query = _with_extras(sa.select(t)).order_by(t.c.customer_id).limit(limit)
        if after is not None:
            query = query.where(t.c.customer_id > after)
        if relationship_manager_id:
            query = query.where(t.c.relationship_manager_id == relationship_manager_id)
        if branch_id:
            query = query.where(t.c.branch_id == branch_id)
        return [self._from_row(row._mapping) for row in (await session.execute(query)).all()]

    async def write_external_ids(self, session: AsyncConnection, customer_id: str,
                                 external_ids: Sequence[ExternalId]) -> ExternalId | None:
        """Make `external_ids` the customer's set; the first pair another customer holds, or None.

        Runs inside the caller's transaction: on a conflict the caller raises and nothing stays.
        """
        await session.execute(sa.delete(x).where(x.c.customer_id == customer_id))
        if not external_ids:
            return None
        rows = [{"source_system": e.source_system, "external_id": e.id, "customer_id": customer_id}
                for e in sorted(set(external_ids))]
        inserted = await session.execute(pg.insert(x).on_conflict_do_nothing().returning(
            x.c.source_system, x.c.external_id), rows)
        written = {(row.source_system, row.external_id) for row in inserted}
        taken = [e for e in sorted(set(external_ids)) if (e.source_system, e.id) not in written]
        return taken[0] if taken else None

    async def customer_ids_by_external_id(self, session: AsyncConnection, *, source_system: str,
                                          external_id: str) -> list[str]:
        """Ids of the customers holding an external id (LookupCustomer by `external_id`): at most one."""
        rows = await session.execute(sa.select(x.c.customer_id).where(
            x.c.source_system == source_system, x.c.external_id == external_id))
        return [row.customer_id for row in rows]
