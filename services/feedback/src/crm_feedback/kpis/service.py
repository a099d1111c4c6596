"""Feedback KPIs, in the caller's (read-only) unit of work: survey figures, complaint figures and
the SLA figures of the breach report, for the totals and for each group of a breakdown."""

from __future__ import annotations

from datetime import datetime

from crm_feedback.kpis import rules
from crm_feedback.kpis.model import KpiQuery, KpiReport, Kpis
from crm_feedback.kpis.repository import TOTAL, KpiRepository
from crm_feedback.sla.clock_repository import SlaClockRepository
from crm_feedback.sla.clocks import ReportFilter, ReportRow
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.validation import Violations


class FeedbackKpis:
    def __init__(self, *, repository: KpiRepository, clocks: SlaClockRepository, clock: Clock = utc_now) -> None:
        self._repository = repository
        self._clocks = clocks
        self._clock = clock

    async def compute(self, *, uow: UnitOfWork, query: KpiQuery | None) -> KpiReport:
        v = Violations()
        rules.validate(query, v)
        v.raise_if_any()
        assert query is not None
        now = self._clock()
        totals = (await self._figures(uow, query, 0, now=now)).get(TOTAL, Kpis())
        totals.complaints_per_thousand_customers = rules.per_thousand(totals.complaints_received,
                                                                      query.customer_count)
        groups: tuple[tuple[object, Kpis], ...] = ()
        if query.group_by:
            found = await self._figures(uow, query, query.group_by, now=now)
            groups = tuple(sorted(found.items(), key=lambda item: str(item[0])))
        return KpiReport(start=query.start, end=query.end, totals=totals, groups=groups, computed_at=now)

    async def _figures(self, uow: UnitOfWork, query: KpiQuery, dimension: int, *, now: datetime
                       ) -> dict[object, Kpis]:
        surveys = await self._repository.survey_figures(uow, query, dimension)
        complaints = await self._repository.complaint_figures(uow, query, dimension, now=now)
        report = ReportFilter(start=query.start, end=query.end, group_by=rules.REPORT_DIMENSION.get(dimension, 0),
                              channel=query.channel, branch_id=query.branch_id, product=query.product)
        rows, total = await self._clocks.report(uow, query=report, handler=None, now=now)
        sla: dict[object, ReportRow] = {r.key: r for r in rows} if dimension else {TOTAL: total}
        found: dict[object, Kpis] = {}
        for key in {*surveys, *complaints, *sla}:
            kpis = complaints.get(key) or Kpis()
            survey = surveys.get(key)
            if survey is not None:
                for name in ("nps_responses", "promoters", "passives", "detractors", "csat_average",
                             "csat_responses", "ces_average", "ces_responses"):
                    setattr(kpis, name, getattr(survey, name))
            clocks = sla.get(key)
            if clocks is not None and clocks.respond_due + clocks.resolve_due:
                kpis.breach_rate = clocks.breach_rate
                kpis.respond_met_share = clocks.respond_met_share
                kpis.resolve_met_share = clocks.resolve_met_share
            found[key] = kpis
        return found
