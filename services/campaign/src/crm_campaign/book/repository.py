"""All SQL about the books. Never commits."""

from __future__ import annotations

import sqlalchemy as sa

from crm_campaign.book.tables import customer_manager as t
from crmkit.db import UnitOfWork


class BookRepository:
    async def manager_of(self, uow: UnitOfWork, customer_id: str) -> str | None:
        """The customer's relationship manager ("" when unmanaged); None when the copy of
        profile's customers does not know the customer."""
        found = (await uow.execute(sa.select(t.c.relationship_manager_id).where(t.c.customer_id == customer_id))
                 ).first()
        return None if found is None else str(found.relationship_manager_id)
