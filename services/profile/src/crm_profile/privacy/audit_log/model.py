"""The audit log as the service's code sees it: stored records, a ListAuditRecords filter and page,
the result of a chain verification (enum numbers are the contract's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum


class AuditAction(IntEnum):
    UNSPECIFIED = 0
    READ = 1
    LIST = 2
    LOOKUP = 3
    CREATE = 4
    UPDATE = 5
    DELETE = 6
    MERGE = 7
    EXPORT = 8
    ERASE = 9


class AuditOutcome(IntEnum):
    UNSPECIFIED = 0
    ALLOWED = 1
    DENIED = 2


class ChainFailure(IntEnum):
    """The contract's AuditChainFailure."""
    UNSPECIFIED = 0
    NONE = 0  # the chain holds: the contract leaves the failure unset
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
