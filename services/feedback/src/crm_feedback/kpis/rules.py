"""Pure rules of the KPI request. No I/O."""

from __future__ import annotations

from datetime import timedelta

from crm_feedback.complaints import rules as complaint_rules
from crm_feedback.kpis.model import KpiQuery
from crm_feedback.surveys import rules as survey_rules
from crmkit.validation import Violations

MAX_PERIOD = timedelta(days=366)
BRANCH, PRODUCT, CHANNEL, DAY, WEEK, MONTH = 1, 2, 3, 4, 5, 6  # KpiDimension
DIMENSIONS = range(0, 7)
PERIODS = {DAY: "day", WEEK: "week", MONTH: "month"}
# KpiDimension -> the SLA report's ReportDimension for the same breakdown.
REPORT_DIMENSION = {BRANCH: 4, PRODUCT: 9, CHANNEL: 3, DAY: 6, WEEK: 7, MONTH: 8}


def validate(query: KpiQuery | None, v: Violations) -> None:
    if query is None:
        v.add("interval", "is required: the period, with both start_time and end_time")
        return
    if v.check(query.start < query.end, "interval", "end_time must be after start_time"):
        v.check(query.end - query.start <= MAX_PERIOD, "interval", "must be at most 366 days long")
    v.enum(query.channel, "channel", complaint_rules.CHANNELS, "Channel")
    v.max_length(query.branch_id, "branch_id", complaint_rules.MAX_BRANCH_ID)
    v.text(query.branch_id, "branch_id")
    if query.touchpoint:
        v.pattern(query.touchpoint, "touchpoint", survey_rules.TOUCHPOINT, "must be a short code from a-z 0-9 _")
    if query.survey:
        survey_rules.SURVEY_NAME.check(query.survey, "survey", v)
    complaint_rules.validate_product(query.product, "product", v)
    v.check(query.customer_count >= 0, "customer_count", "must not be negative")
    v.enum(query.group_by, "group_by", DIMENSIONS, "KpiDimension")


def per_thousand(complaints: int, customers: int) -> float | None:
    """Complaints per 1,000 customers; None without a customer count."""
    return 1000.0 * complaints / customers if customers else None
