"""Pure decisions about the audit log: what kind of access a record is, and whether a run of
records follows its hash chains. No I/O here.

The log is the kit's (`crmkit.audit`): several chains share one sequence (`changes`, written in
the transactions of changes, and one `reads:<uuid>` chain per process). Each record links to the
previous record *of its chain*, so `previous_hash` is that record's hash. Sequence numbers come
from an identity column: a transaction that rolled back leaves a number unused, so gaps are not
evidence of removal; a removed record breaks its successor's link instead, and a removed tail is
what `expected_end_hash` (an anchor saved outside the service) reveals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc

from crm_profile.privacy.audit_log.model import AuditAction, AuditRow, ChainFailure
from crmkit.audit import GENESIS_HASH, AuditEntry, record_hash
from crmkit.errors import DomainError, FieldViolation, InvalidArgument
from crmkit.validation import unknown_enum

MAX_VERIFY_RANGE = 10_000_000
HASH_HEX_LENGTH = 64

# AuditAction number -> the verbs (last part of the kit's `action`, e.g. `customer.read`) it covers.
READ, LIST, LOOKUP, CREATE, UPDATE, DELETE, MERGE, EXPORT, ERASE = (
    AuditAction.READ, AuditAction.LIST, AuditAction.LOOKUP, AuditAction.CREATE, AuditAction.UPDATE,
    AuditAction.DELETE, AuditAction.MERGE, AuditAction.EXPORT, AuditAction.ERASE)
ACTION_VERBS: dict[int, tuple[str, ...]] = {
    READ: ("read", "get", "history"),
    LIST: ("list",),
    LOOKUP: ("lookup", "match"),
    CREATE: ("create",),
    UPDATE: ("update", "record", "remove", "set", "confirm_fields"),
    DELETE: ("delete",),
    MERGE: ("merge", "unmerge"),
    EXPORT: ("export",),
    ERASE: ("erase",),
}
_ACTION_OF_VERB = {verb: action for action, verbs in ACTION_VERBS.items() for verb in verbs}


class OutOfRange(DomainError):
    """OUT_OF_RANGE: a position past the end of the log."""

    code = grpc.StatusCode.OUT_OF_RANGE


def action_of(action: str) -> int:
    """The AuditAction of a stored action; 0 (unspecified) for one no kind covers (e.g. key rotation)."""
    return _ACTION_OF_VERB.get(action.rsplit(".", 1)[-1], 0)


def verbs_of(actions: Iterable[int]) -> list[str]:
    return sorted({verb for action in actions for verb in ACTION_VERBS.get(action, ())})


def check_actions(actions: Iterable[int], field: str, violations: list[FieldViolation]) -> None:
    for i, action in enumerate(actions):
        if action not in ACTION_VERBS:
            violations.append(FieldViolation(f"{field}[{i}]", unknown_enum(action, "AuditAction") if action
                                             else "must be an AuditAction other than AUDIT_ACTION_UNSPECIFIED"))


def check_range(start: int, end: int, expected_end_hash: str) -> None:
    bad = []
    if start < 0:
        bad.append(FieldViolation("start_sequence", "must not be negative"))
    if end < 0:
        bad.append(FieldViolation("end_sequence", "must not be negative"))
    if start > 0 and end > 0 and end < start:
        bad.append(FieldViolation("end_sequence", "must not be before start_sequence"))
    elif start >= 0 and end > 0 and end - max(start, 1) + 1 > MAX_VERIFY_RANGE:
        bad.append(FieldViolation("end_sequence", f"must be at most {MAX_VERIFY_RANGE:,} entries after start_sequence"
                                                  "; check longer logs range by range"))
    if expected_end_hash and (len(expected_end_hash) != HASH_HEX_LENGTH
                              or any(ch not in "0123456789abcdef" for ch in expected_end_hash)):
        bad.append(FieldViolation("expected_end_hash", "must be 64 lower-case hex characters"))
    if bad:
        raise InvalidArgument(bad)


def bounded_end(start: int, end: int, newest: int) -> int:
    """The last entry a verification checks: `end`, or the newest (at most the range limit)."""
    last = end or newest
    return min(last, start + MAX_VERIFY_RANGE - 1)


class ChainWalker:
    """Follows every chain through records given in sequence order, from the tails the chains had
    before the first of them (the kept anchors of purged records, or genesis)."""

    def __init__(self, tails: Mapping[str, bytes]) -> None:
        self._tails = dict(tails)

    def check(self, row: AuditRow) -> ChainFailure:
        """The record's failure (NONE when it follows its chain); the walk goes on from it either way."""
        expected_prev = self._tails.get(row.chain_id, GENESIS_HASH)
        self._tails[row.chain_id] = row.hash
        if row.prev_hash != expected_prev:
            return ChainFailure.LINK_MISMATCH
        entry = AuditEntry(principal=row.principal, action=row.action, resource_name=row.resource_name,
                           purpose=row.purpose, justification=row.justification, trace_id=row.trace_id,
                           actor_roles=row.actor_roles, method=row.method, fields=row.fields, outcome=row.outcome)
        if row.hash != record_hash(row.prev_hash, row.recorded_at, entry, chain_id=row.chain_id,
                                   recipe=row.hash_recipe):
            return ChainFailure.HASH_MISMATCH
        return ChainFailure.NONE


def anchor_matches(expected_end_hash: str, *, end_hash: bytes, end_given: bool, heads: Iterable[bytes]) -> bool:
    """Whether an anchor saved outside the service still matches. For a given end, its entry's
    hash; for "the newest", the hash of the newest entry of any chain (several chains share the
    log, and the anchor may be the head of any of them)."""
    if end_hash.hex() == expected_end_hash:
        return True
    return not end_given and any(head.hex() == expected_end_hash for head in heads)
