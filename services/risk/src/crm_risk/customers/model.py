"""A customer as risk's read model holds it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm_risk.suitability.model import CustomerFacts


@dataclass(frozen=True)
class CustomerRecord:
    customer_id: str
    facts: CustomerFacts
    relationship_manager_id: str
    branch_id: str
    # When the row last changed from the profile feed (the contract's `data_as_of`).
    data_as_of: datetime
