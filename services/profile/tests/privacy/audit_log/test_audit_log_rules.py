"""The pure decisions of the audit log, without a database: the hash chains, actions and ranges."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from crm_profile.privacy.audit_log import rules as audit_rules
from crm_profile.privacy.audit_log.model import AuditRow, ChainFailure
from crmkit.audit import GENESIS_HASH, AuditEntry, record_hash
from crmkit.errors import InvalidArgument

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


# --- the audit chain --------------------------------------------------------------------------------


def chain(n: int, chain_id: str = "changes", start_seq: int = 1) -> list[AuditRow]:
    rows, prev = [], GENESIS_HASH
    for i in range(n):
        at = NOW + timedelta(seconds=i)
        entry = AuditEntry(principal="rm", action="customer.read", resource_name="customers/C1", purpose="AUDIT",
                           justification=str(i))
        digest = record_hash(prev, at, entry, chain_id=chain_id)
        rows.append(AuditRow(seq=start_seq + 2 * i, chain_id=chain_id, recorded_at=at, principal="rm",
                             action="customer.read", resource_name="customers/C1", purpose="AUDIT",
                             justification=str(i), trace_id="", prev_hash=prev, hash=digest, hash_recipe=2))
        prev = digest
    return rows


def walk(rows: list[AuditRow], tails: dict[str, bytes] | None = None) -> list[ChainFailure]:
    walker = audit_rules.ChainWalker(tails or {})
    return [walker.check(r) for r in sorted(rows, key=lambda r: r.seq)]


def test_interleaved_chains_verify_and_edits_or_removals_are_found() -> None:
    a, b = chain(4, "changes", 1), chain(3, "reads:x", 2)
    assert set(walk(a + b)) == {ChainFailure.NONE}
    edited = [*a[:2], dataclasses.replace(a[2], justification="changed"), a[3]]
    assert walk(edited) == [ChainFailure.NONE, ChainFailure.NONE, ChainFailure.HASH_MISMATCH, ChainFailure.NONE]
    removed = a[:1] + a[2:]
    assert walk(removed)[1] == ChainFailure.LINK_MISMATCH
    # After a purge the first kept record follows the anchor left for its chain.
    assert walk(a[2:], {"changes": a[1].hash}) == [ChainFailure.NONE, ChainFailure.NONE]
    assert walk(a[2:])[0] == ChainFailure.LINK_MISMATCH


def test_audit_actions_and_ranges() -> None:
    assert audit_rules.action_of("customer.read") == audit_rules.READ
    assert audit_rules.action_of("consent.record") == audit_rules.UPDATE
    assert audit_rules.action_of("customer.unmerge") == audit_rules.MERGE
    assert audit_rules.action_of("encryption_key.rotate") == 0
    assert audit_rules.verbs_of([audit_rules.LOOKUP]) == ["lookup", "match"]
    for start, end, anchor in ((5, 4, ""), (1, 10_000_001, ""), (-1, 0, ""), (0, 0, "xyz")):
        with pytest.raises(InvalidArgument):
            audit_rules.check_range(start, end, anchor)
    audit_rules.check_range(1, 10_000_000, "a" * 64)
    assert audit_rules.bounded_end(1, 0, 50) == 50 and audit_rules.bounded_end(1, 0, 20_000_000) == 10_000_000
    head = b"\x01" * 32
    assert audit_rules.anchor_matches(head.hex(), end_hash=b"\x02" * 32, end_given=False, heads=[head])
    assert not audit_rules.anchor_matches(head.hex(), end_hash=b"\x02" * 32, end_given=True, heads=[head])
