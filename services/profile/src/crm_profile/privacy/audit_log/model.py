"""The audit log as the service's code sees it: stored records, a ListAuditRecords filter and page,
the result of a chain verification (enum numbers are the contract's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum


class ChainFailure(IntEnum):
    NONE = 0
    HASH_MISMATCH = 1
    LINK_MISMATCH = 2
    SEQUENCE_GAP = 3
    ANCHOR_MISMATCH = 4


@dataclass(frozen=True)
class AuditRow:
    """One stored audit record (the kit's `audit_record` row)."""

    seq: int
    chain_id: str
    recorded_at: datetime
    principal: str
    action: str
    resource_name: str
    purpose: str
    justification: str
    trace_id: str
    prev_hash: bytes
    hash: bytes
    actor_roles: tuple[str, ...] = ()
    method: str = ""
    fields: tuple[str, ...] = ()
    outcome: str = "ALLOWED"
    hash_recipe: int = 1


@dataclass(frozen=True)
class AuditFilter:
    customer_id: str = ""
    actor: str = ""
    purpose: str = ""  # AccessPurpose name without its prefix, e.g. `AUDIT`; "" for all
    actions: tuple[int, ...] = ()  # AuditAction numbers
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class ChainCheck:
    valid: bool
    start_sequence: int
    end_sequence: int
    end_hash: bytes
    first_invalid_sequence: int = 0
    failure: ChainFailure = ChainFailure.NONE
