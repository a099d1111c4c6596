"""ListAuditRecords and VerifyAuditChain over the kit's hash-chained audit log (see rules.py), in
the caller's read-only unit of work (crmkit.db's rule)."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from crm_profile.privacy.audit_log import rules as audit_rules
from crm_profile.privacy.audit_log.model import AuditFilter, AuditRow, ChainCheck, ChainFailure
from crm_profile.privacy.audit_log.repository import AuditRepository
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose
from crmkit.validation import Violations


class AuditLog:
    def __init__(self, *, repository: AuditRepository, audit: AuditWriter, page_tokens: PageTokens) -> None:
        self._repository = repository
        self._audit = audit
        self._page_tokens = page_tokens

    async def list(self, *, uow: UnitOfWork, narrowing: AuditFilter, page_size: int, page_token: str, purpose: Purpose,
                   actor: Principal, violations: Violations | None = None) -> Page[AuditRow]:
        """Records in sequence order; reading the log is itself recorded in it."""
        if violations is not None:
            violations.raise_if_any()
        limit = clamp_page_size(page_size)
        query = {key: str(value) for key, value in dataclasses.asdict(narrowing).items()}
        after = self._page_tokens.decode(page_token, query=query)
        rows = await self._repository.page(uow, narrowing, verbs=audit_rules.verbs_of(narrowing.actions),
                                           after=after, limit=limit + 1)
        subject = f"customers/{narrowing.customer_id}" if narrowing.customer_id else "auditRecords"
        await self._audit.record(AuditEntry(principal=actor.subject, action="audit_record.list", resource_name=subject,
                                            purpose=purpose.purpose, justification=purpose.justification))
        return self._page_tokens.page(rows, limit=limit, key=lambda r: r.seq, query=query)

    async def verify(self, *, uow: UnitOfWork, start: int, end: int, expected_end_hash: str) -> ChainCheck:
        """Walk the chains from `start` to `end` (0: the oldest kept, the newest); a broken chain is
        a result, not an error. `uow` is a read-only unit of work this is the first statement of
        (every read must see one snapshot, so it becomes REPEATABLE READ here)."""
        audit_rules.check_range(start, end, expected_end_hash)
        await uow.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        newest = await self._repository.newest(uow)
        oldest = await self._repository.oldest(uow)
        if start > newest or (newest == 0 and start > 0):
            raise audit_rules.OutOfRange(f"start_sequence {start} is beyond the newest entry ({newest})",
                                         reason="AUDIT_SEQUENCE_OUT_OF_RANGE", metadata={"newest": str(newest)})
        first = max(start, oldest) if start else oldest
        if end and end < first:
            raise audit_rules.OutOfRange(f"entries before {first} are no longer retained",
                                         reason="AUDIT_SEQUENCE_PURGED", metadata={"oldest": str(first)})
        last = audit_rules.bounded_end(first, end, newest)
        walker = audit_rules.ChainWalker(await self._repository.tails_before(uow, first))
        checked, end_hash = first - 1, b""
        async for row in self._repository.stream(uow, start=first, end=min(last, newest)):
            failure = walker.check(row)
            if failure != ChainFailure.NONE:
                return ChainCheck(False, first, row.seq, row.hash, row.seq, failure)
            checked, end_hash = row.seq, row.hash
        if expected_end_hash:
            broken = await self._anchor_failure(uow, expected_end_hash, end=end, newest=newest,
                                                end_hash=end_hash)
            if broken:
                return ChainCheck(False, first, checked, end_hash, broken, ChainFailure.ANCHOR_MISMATCH)
        return ChainCheck(True, first, checked, end_hash)

    async def _anchor_failure(self, uow: UnitOfWork, expected: str, *, end: int, newest: int,
                              end_hash: bytes) -> int:
        """0 when the saved anchor still matches, else the first entry found wanting."""
        if end:
            if end > newest:
                return newest + 1  # the anchored entry is gone: the log was cut after `newest`
            stored = await self._repository.hash_of(uow, end)
            return 0 if stored is not None and stored.hex() == expected else end
        heads = await self._repository.heads(uow)
        return 0 if audit_rules.anchor_matches(expected, end_hash=end_hash, end_given=False, heads=heads) else newest
