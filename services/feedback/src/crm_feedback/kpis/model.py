"""Feedback KPIs as values: the query, and the figures of one group or the totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class KpiQuery:
    start: datetime
    end: datetime
    channel: int = 0
    branch_id: str = ""
    touchpoint: str = ""
    survey: str = ""
    product: str = ""
    customer_count: int = 0
    group_by: int = 0


@dataclass(frozen=True)
class CategoryCounts:
    category: int
    received: int
    resolved: int
    breached: int


@dataclass
class Kpis:
    nps_responses: int = 0
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    csat_average: float | None = None
    csat_responses: int = 0
    ces_average: float | None = None
    ces_responses: int = 0
    complaints_received: int = 0
    by_category: list[CategoryCounts] = field(default_factory=list)
    median_time_to_respond: timedelta | None = None
    median_time_to_resolve: timedelta | None = None
    breach_rate: float | None = None
    respond_met_share: float | None = None
    resolve_met_share: float | None = None
    complaints_per_thousand_customers: float | None = None

    @property
    def nps(self) -> float | None:
        """Percentage of promoters minus percentage of detractors, -100 to 100."""
        if not self.nps_responses:
            return None
        return 100.0 * (self.promoters - self.detractors) / self.nps_responses


@dataclass(frozen=True)
class KpiReport:
    start: datetime
    end: datetime
    totals: Kpis
    # (key, figures) in key order; key: a branch id, product code, Channel number or period's first day.
    groups: tuple[tuple[object, Kpis], ...]
    computed_at: datetime
