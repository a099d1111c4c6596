"""Breached SLA clocks and the breach report, in the caller's unit of work (read only)."""

from __future__ import annotations

from datetime import timedelta

from crm_feedback.complaints import rules as complaint_rules
from crm_feedback.sla.clock_repository import SlaClockRepository
from crm_feedback.sla.clocks import Breach, BreachFilter, Report, ReportFilter
from crm_feedback.sla.rules import CATEGORIES, PRIORITIES, SlaClock
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

MAX_REPORT_PERIOD = timedelta(days=366)
DIMENSIONS = range(0, 10)  # ReportDimension


class SlaBreaches:
    def __init__(self, *, clocks: SlaClockRepository, page_tokens: PageTokens, clock: Clock = utc_now) -> None:
        self._clocks = clocks
        self._page_tokens = page_tokens
        self._clock = clock

    async def list(self, *, uow: UnitOfWork, query: BreachFilter, page_size: int, page_token: str,
                   actor: Principal) -> Page[Breach]:
        v = Violations()
        v.check(page_size >= 0, "page_size", "must not be negative")
        _validate_breach_filter(query, v)
        v.raise_if_any()
        limit = clamp_page_size(page_size)
        handler = complaint_rules.case_handler(actor)
        token_query = {"filter": _token_filter(query), "handler": handler}
        after = self._page_tokens.decode(page_token, query=token_query)
        found = await self._clocks.breaches(uow, query=query, customer_id=complaint_rules.customer_id_of(
            query.customer) or "", handler=handler, now=self._clock(), after=after, limit=limit + 1)
        return self._page_tokens.page(
            found, limit=limit, query=token_query,
            key=lambda b: [b.due_at.isoformat(), b.complaint_id, int(b.clock), b.cycle])

    async def report(self, *, uow: UnitOfWork, query: ReportFilter | None, actor: Principal) -> Report:
        v = Violations()
        if query is None:
            v.add("interval", "is required: the period, with both start_time and end_time")
            v.raise_if_any()
        assert query is not None
        if v.check(query.start < query.end, "interval", "end_time must be after start_time"):
            v.check(query.end - query.start <= MAX_REPORT_PERIOD, "interval", "must be at most 366 days long")
        v.enum(query.group_by, "group_by", DIMENSIONS, "ReportDimension")
        v.enum(query.category, "category", CATEGORIES, "ComplaintCategory")
        v.enum(query.priority, "priority", PRIORITIES, "ComplaintPriority")
        v.enum(query.channel, "channel", complaint_rules.CHANNELS, "Channel")
        v.max_length(query.branch_id, "branch_id", complaint_rules.MAX_BRANCH_ID)
        v.raise_if_any()
        now = self._clock()
        rows, total = await self._clocks.report(uow, query=query, handler=complaint_rules.case_handler(actor),
                                                now=now)
        return Report(start=query.start, end=query.end, group_by=query.group_by, rows=tuple(rows), total=total,
                      computed_at=now)


def _validate_breach_filter(query: BreachFilter, v: Violations) -> None:
    if query.due_start is not None and query.due_end is not None:
        v.check(query.due_start <= query.due_end, "due_interval", "end_time must not be before start_time")
    v.enum(query.clock, "clock", frozenset(SlaClock), "SlaClock")
    v.enum(query.category, "category", CATEGORIES, "ComplaintCategory")
    v.enum(query.priority, "priority", PRIORITIES, "ComplaintPriority")
    v.max_length(query.branch_id, "branch_id", complaint_rules.MAX_BRANCH_ID)
    v.text(query.branch_id, "branch_id")
    v.max_length(query.assignee, "assignee", complaint_rules.MAX_EMPLOYEE_ID)
    v.text(query.assignee, "assignee")
    if query.customer:
        complaint_rules.CUSTOMER_NAME.check(query.customer, "customer", v)


def _token_filter(query: BreachFilter) -> dict[str, object]:
    return {"start": query.due_start.isoformat() if query.due_start else None,
            "end": query.due_end.isoformat() if query.due_end else None, "clock": query.clock,
            "category": query.category, "priority": query.priority, "branch": query.branch_id,
            "assignee": query.assignee, "customer": query.customer, "running": query.running_only}
