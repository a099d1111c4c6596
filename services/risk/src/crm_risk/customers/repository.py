"""All SQL about the customer read model. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from crm_risk.customers.model import CustomerRecord
from crm_risk.customers.tables import customer as t
from crm_risk.suitability.model import CustomerFacts
from crmkit.db import UnitOfWork


class CustomerFactsSource(Protocol):
    """Where decisions read customers from (the read model table; a test may give another)."""

    async def find(self, uow: UnitOfWork, customer_ids: Sequence[str]) -> dict[str, CustomerRecord]: ...


def _from_row(row: Any) -> CustomerRecord:
    return CustomerRecord(
        customer_id=row.customer_id,
        facts=CustomerFacts(risk_tolerance=row.risk_tolerance, kyc_status=row.kyc_status, birth_date=row.birth_date,
                            vulnerable=row.vulnerable, assessment_expiry=row.assessment_expiry),
        relationship_manager_id=row.relationship_manager_id, branch_id=row.branch_id, data_as_of=row.updated_at)


class CustomerRepository:
    async def find(self, uow: UnitOfWork, customer_ids: Sequence[str]) -> dict[str, CustomerRecord]:
        """The customers of `customer_ids` the read model holds, by id (one query for a batch)."""
        if not customer_ids:
            return {}
        rows = (await uow.execute(sa.select(t).where(t.c.customer_id.in_(list(customer_ids))))).all()
        return {row.customer_id: _from_row(row) for row in rows}
