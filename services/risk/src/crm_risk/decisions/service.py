"""Decision audit use cases: record decisions in the caller's transaction, list them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from crm_risk.decisions import repository, rules
from crm_risk.decisions.model import Decision, DecisionAudit, DecisionFilter
from crmkit.db import UnitOfWork
from crmkit.outbox import current_trace_id
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations


def _rows(decisions: Sequence[Decision], *, requester: str, now: datetime) -> list[dict[str, Any]]:
    trace_id = current_trace_id()
    return [{"decision_audit_id": str(uuid.uuid4()), "decision_type": int(d.decision_type),
             "customer_id": d.customer_id, "decided_by": d.decided_by, "decider_version": d.decider_version,
             "outcome": d.outcome, "reason_codes": list(d.reason_codes), "inputs": dict(d.inputs),
             "inputs_sha256": rules.inputs_sha256(d.inputs), "context": d.context, "requester": requester,
             "trace_id": trace_id, "decide_time": now} for d in decisions]


class DecisionAudits:
    def __init__(self, *, page_tokens: PageTokens) -> None:
        self._page_tokens = page_tokens

    async def record(self, *, uow: UnitOfWork, decisions: Sequence[Decision], requester: str,
                     now: datetime) -> list[str]:
        """Each decision's audit record, in the caller's transaction; their resource names in order."""
        rows = _rows(decisions, requester=requester, now=now)
        await repository.insert_many(uow, rows)
        return [f"decisionAudits/{row['decision_audit_id']}" for row in rows]

    async def record_copy(self, *, connection: asyncpg.Connection, decisions: Sequence[Decision], requester: str,
                          now: datetime) -> list[str]:
        """`record` for bulk work on a raw connection (batch scoring), by COPY, in the caller's
        transaction; their resource names in order."""
        rows = _rows(decisions, requester=requester, now=now)
        await repository.copy_many(connection, rows)
        return [f"decisionAudits/{row['decision_audit_id']}" for row in rows]

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str, where: DecisionFilter
                   ) -> Page[DecisionAudit]:
        v = Violations()
        rules.validate_filter(decision_type=where.decision_type, context=where.context, decided_by=where.decided_by,
                              start=where.decide_from, end=where.decide_before, v=v)
        v.raise_if_any()
        limit = clamp_page_size(page_size)
        query = {"customer": where.customer_id, "type": where.decision_type, "by": where.decided_by,
                 "context": where.context, "from": where.decide_from, "before": where.decide_before}
        before = self._page_tokens.decode(page_token, query=query)
        found = await repository.page(uow, before=before, limit=limit + 1, where=where)
        return self._page_tokens.page(found, limit=limit, key=lambda d: d.sequence, query=query)
