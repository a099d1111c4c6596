"""The reports' pure decisions: which churn a customer's data shows, why they left, how periods are
cut and counts summed, and the credit rating inputs. No I/O.

Churn detection (once per customer, type and day; replays change nothing):

- full attrition on the customer's `closed_on` (the last account closed); involuntary instead
  when the recorded exit reason is `involuntary` (the bank ended the relationship);
- balance attrition when profile's features show assets at most half of what they were 90 days
  before while the relationship is open, on the day the features were computed, at most once
  per 90 days;
- dormancy 180 days after the last activity profile's features show, once that day has come
  (by the features' computation time) while the relationship is open.

The cause (the source study's three types) comes from the evidence in this order: the exit
reason recorded on the customer; a complaint filed in the 90 days before (the bank's fault); an
abnormal-transactions or large-outflows alert in the 90 days before (money moved out ahead of
leaving: deliberate); else undetermined.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_risk.reports.model import (
    CauseShare,
    ChurnCase,
    ChurnCause,
    ChurnDetection,
    ChurnReport,
    ChurnSnapshot,
    ChurnType,
    ChurnTypeRow,
    CreditFacts,
    CreditInputs,
    DriverShare,
    FlowCounts,
    FlowReport,
    FlowRow,
    Granularity,
    Period,
)
from crmkit.validation import Violations, unknown_enum

BALANCE_DROP = Decimal("0.5")
BALANCE_WINDOW = timedelta(days=90)
DORMANCY_AFTER = timedelta(days=180)
EVIDENCE_WINDOW = timedelta(days=90)
MAX_CHURN_SPAN = timedelta(days=1096)  # 3 years, one of them a leap year
MAX_PERIODS = 400
MAX_FILTER_VALUES = 1000
MAX_ID_LENGTH = 64
TOP_DRIVERS = 3
MAX_DRIVER_SHARES = 10
HIGH_BAND = 3
KYC_VERIFIED = 2  # crm.profile.v1.KycStatus.KYC_STATUS_VERIFIED
INVOLUNTARY_REASON = "involuntary"
DECLARED_CAUSES = {"natural": ChurnCause.NATURAL, "deliberate": ChurnCause.DELIBERATE,
                   "bank_fault": ChurnCause.BANK_FAULT}
# Inputs no followed feed carries yet: always missing (crm.risk.v1.CreditRatingInputs).
UNSOURCED_INPUTS = ("average_balance_12m", "average_monthly_inflow_6m", "average_monthly_outflow_6m",
                    "payroll_months_12m")


@dataclass(frozen=True)
class CreditAttributes:
    """Profile custom attribute ids (risk settings) carrying the credit system's facts and the
    exit reason recorded when a customer leaves; empty: not read."""

    credit_rating: str = "credit_rating"
    credit_limit: str = "credit_limit"
    overdue: str = "credit_overdue"
    days_past_due: str = "max_days_past_due_12m"
    exit_reason: str = "exit_reason"


def full_months(since: date, until: date) -> int:
    months = (until.year - since.year) * 12 + until.month - since.month - (1 if until.day < since.day else 0)
    return max(months, 0)


# --- churn detection ---------------------------------------------------------------------------

def detect(snapshot: ChurnSnapshot, *, last_balance_attrition_on: date | None) -> list[ChurnDetection]:
    """The churn the customer's data shows now (the repository ignores what is already recorded)."""
    found: list[tuple[ChurnType, date, Decimal | None]] = []
    assets_before = (snapshot.aum - snapshot.aum_change_90d
                     if snapshot.aum is not None and snapshot.aum_change_90d is not None else None)
    if snapshot.closed_on is not None:
        kind = (ChurnType.INVOLUNTARY if snapshot.exit_reason.strip().lower() == INVOLUNTARY_REASON
                else ChurnType.FULL_ATTRITION)
        found.append((kind, snapshot.closed_on, assets_before))
    elif snapshot.features_computed_at is not None:
        computed = snapshot.features_computed_at
        if snapshot.last_activity_at is not None and computed - snapshot.last_activity_at >= DORMANCY_AFTER:
            found.append((ChurnType.DORMANCY, (snapshot.last_activity_at + DORMANCY_AFTER).date(), assets_before))
        if (assets_before is not None and snapshot.aum is not None and assets_before > 0
                and snapshot.aum <= assets_before * BALANCE_DROP
                and (last_balance_attrition_on is None
                     or computed.date() - last_balance_attrition_on >= BALANCE_WINDOW)):
            found.append((ChurnType.BALANCE_ATTRITION, computed.date(), assets_before))
    return [_detection(snapshot, kind, day, before) for kind, day, before in found]


def _detection(snapshot: ChurnSnapshot, kind: ChurnType, day: date, assets_before: Decimal | None
               ) -> ChurnDetection:
    # The last score before the churn: the current one, unless it was made after that day.
    scored_before = snapshot.score_time is not None and snapshot.score_time.date() <= day
    return ChurnDetection(
        customer_id=snapshot.customer_id, churn_type=kind, detected_on=day,
        relationship_manager_id=snapshot.relationship_manager_id, branch_id=snapshot.branch_id,
        assets_before=assets_before,
        tenure_months=full_months(snapshot.onboarded_on, day) if snapshot.onboarded_on else None,
        score_band=snapshot.score_band if scored_before else 0,
        score_drivers=snapshot.score_drivers[:TOP_DRIVERS] if scored_before else ())


# --- churn attribution -------------------------------------------------------------------------

def validate_churn_request(start: datetime | None, end: datetime | None, v: Violations) -> None:
    _validate_interval(start, end, v)
    if start is not None and end is not None and start < end:
        v.check(end - start <= MAX_CHURN_SPAN, "interval", f"must span at most 3 years ({MAX_CHURN_SPAN.days} days)")


def cause_of(case: ChurnCase) -> ChurnCause:
    declared = DECLARED_CAUSES.get(case.exit_reason.strip().lower())
    if declared is not None:
        return declared
    if case.complaints > 0:
        return ChurnCause.BANK_FAULT
    if case.outflow_alerts > 0:
        return ChurnCause.DELIBERATE
    return ChurnCause.UNDETERMINED


def _cause_shares(cases: Sequence[ChurnCase]) -> tuple[CauseShare, ...]:
    counts = Counter(cause_of(c) for c in cases)
    return tuple(CauseShare(cause=cause, customers=n, share=n / len(cases))
                 for cause, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def churn_report(cases: Iterable[ChurnCase], *, start: datetime, end: datetime, now: datetime) -> ChurnReport:
    """Each customer once per churn type (their earliest case of it in the period) and once in the
    report's causes (their earliest case of any type)."""
    ordered = sorted(cases, key=lambda c: (c.detected_on, c.churn_type, c.customer_id))
    by_type: dict[ChurnType, dict[str, ChurnCase]] = defaultdict(dict)
    first: dict[str, ChurnCase] = {}
    for case in ordered:
        by_type[case.churn_type].setdefault(case.customer_id, case)
        first.setdefault(case.customer_id, case)
    churned = len(first)
    rows = [_type_row(kind, list(found.values()), churned) for kind, found in by_type.items()]
    rows.sort(key=lambda r: (-r.customers, r.churn_type))
    return ChurnReport(start=start, end=end, churned_customers=churned, rows=tuple(rows),
                       causes=_cause_shares(list(first.values())) if churned else (), compute_time=now)


def _type_row(kind: ChurnType, cases: Sequence[ChurnCase], churned: int) -> ChurnTypeRow:
    n = len(cases)
    lost = sum((c.assets_before - (c.assets_now or Decimal(0)) for c in cases if c.assets_before is not None),
               Decimal(0))
    tenures = [c.tenure_months for c in cases if c.tenure_months is not None]
    drivers = Counter(f for c in cases for f in dict.fromkeys(c.score_drivers[:TOP_DRIVERS]))
    top = sorted(drivers.items(), key=lambda item: (-item[1], item[0]))[:MAX_DRIVER_SHARES]
    return ChurnTypeRow(
        churn_type=kind, customers=n, share=n / churned, assets_lost=lost,
        median_tenure_months=round(statistics.median(tenures)) if tenures else 0,
        top_drivers=tuple(DriverShare(feature=f, share=k / n) for f, k in top),
        predicted_share=sum(1 for c in cases if c.score_band == HIGH_BAND) / n, causes=_cause_shares(cases),
        dissatisfied_share=sum(1 for c in cases if c.complaints > 0) / n)


# --- account flow ------------------------------------------------------------------------------

def validate_flow_request(start: datetime | None, end: datetime | None, granularity: int, time_zone: str,
                          branch_ids: Sequence[str], product_codes: Sequence[str], v: Violations
                          ) -> tuple[Granularity, ZoneInfo | None, list[Period]]:
    """The granularity, zone and periods; every bad field recorded in `v`."""
    chosen = Granularity.MONTH
    if granularity and v.check(granularity in Granularity.__members__.values(), "granularity",
                               unknown_enum(granularity, "PeriodGranularity")):
        chosen = Granularity(granularity)
    zone = zone_of(time_zone)
    v.check(zone is not None, "time_zone", "must be an IANA time zone name, e.g. Asia/Shanghai")
    _validate_ids(branch_ids, "branch_ids", v)
    _validate_ids(product_codes, "product_codes", v)
    periods: list[Period] = []
    if _validate_interval(start, end, v) and zone is not None:
        assert start is not None and end is not None
        cut = cut_periods(start, end, chosen, zone, limit=MAX_PERIODS)
        if v.check(cut is not None, "interval", f"must cover at most {MAX_PERIODS} periods of the granularity"):
            assert cut is not None
            periods = cut
    return chosen, zone, periods


def zone_of(name: str) -> ZoneInfo | None:
    if not name or name != name.strip() or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _period_floor(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return day
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    if granularity is Granularity.MONTH:
        return day.replace(day=1)
    if granularity is Granularity.QUARTER:
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return date(day.year, 1, 1)


def _next_period(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.DAY:
        return day + timedelta(days=1)
    if granularity is Granularity.WEEK:
        return day + timedelta(days=7)
    months = {Granularity.MONTH: 1, Granularity.QUARTER: 3, Granularity.YEAR: 12}[granularity]
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _day_from(moment: datetime, zone: ZoneInfo) -> date:
    """The first day whose start (local midnight) is at or after `moment`."""
    local = moment.astimezone(zone)
    return local.date() if _midnight(local.date(), zone) >= moment else local.date() + timedelta(days=1)


def days_of(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[date, date]:
    """The days [first, end) whose start (local midnight in `zone`) falls in [start, end)."""
    return _day_from(start, zone), _day_from(end, zone)


def cut_periods(start: datetime, end: datetime, granularity: Granularity, zone: ZoneInfo, *, limit: int
                ) -> list[Period] | None:
    """The periods of [start, end) cut at the calendar boundaries of `zone`, the partial ones at
    either end as they are; None when there would be more than `limit`."""
    periods: list[Period] = []
    boundary = _period_floor(start.astimezone(zone).date(), granularity)
    while _midnight(boundary, zone) < end:
        following = _next_period(boundary, granularity)
        period_start = max(start, _midnight(boundary, zone))
        period_end = min(end, _midnight(following, zone))
        if period_start < period_end:
            if len(periods) == limit:
                return None
            periods.append(Period(start=period_start, end=period_end, first_day=_day_from(period_start, zone),
                                  end_day=_day_from(period_end, zone)))
        boundary = following
    return periods


def flow_report(counts: FlowCounts, *, periods: Sequence[Period], granularity: Granularity, time_zone: str,
                start: datetime, end: datetime, now: datetime) -> FlowReport:
    """Sum the per-day counts into periods, per branch and together."""
    firsts = [p.first_day for p in periods]
    last_day = periods[-1].end_day if periods else None

    def index(day: date) -> int | None:
        if not periods or day < firsts[0] or (last_day is not None and day >= last_day):
            return None
        return bisect_right(firsts, day) - 1

    sums: dict[str, dict[tuple[str, int], int]] = {}
    for name in ("opened", "closed", "new_customers", "lost_customers"):
        summed: dict[tuple[str, int], int] = defaultdict(int)
        for (branch, day), n in getattr(counts, name).items():
            i = index(day)
            if i is not None:
                summed[branch, i] += n
        sums[name] = summed
    branches = sorted({b for b, _ in sums["opened"]} | {b for b, _ in sums["closed"]}
                      | {b for b, _ in sums["new_customers"]} | {b for b, _ in sums["lost_customers"]}
                      | {b for b, n in counts.open_at_start.items() if n})
    rows: list[FlowRow] = []
    totals: list[FlowRow] = []
    open_now = {b: counts.open_at_start.get(b, 0) for b in branches}
    for i, p in enumerate(periods):
        in_period: list[FlowRow] = []
        for b in branches:
            opened, closed = sums["opened"].get((b, i), 0), sums["closed"].get((b, i), 0)
            at_start = open_now[b]
            open_now[b] = at_start + opened - closed
            row = FlowRow(period_start=p.start, period_end=p.end, branch_id=b, opened=opened, closed=closed,
                          open_at_end=open_now[b], new_customers=sums["new_customers"].get((b, i), 0),
                          lost_customers=sums["lost_customers"].get((b, i), 0))
            if at_start or opened or closed or row.open_at_end or row.new_customers or row.lost_customers:
                in_period.append(row)
        rows.extend(in_period)
        totals.append(_together(in_period, p.start, p.end, open_at_end=sum(open_now.values())))
    total = _together(rows, start, end, open_at_end=sum(open_now.values()))
    return FlowReport(start=start, end=end, granularity=granularity, time_zone=time_zone, rows=tuple(rows),
                      period_totals=tuple(totals), total=total, compute_time=now)


def _together(rows: Sequence[FlowRow], start: datetime, end: datetime, *, open_at_end: int) -> FlowRow:
    return FlowRow(period_start=start, period_end=end, branch_id="", opened=sum(r.opened for r in rows),
                   closed=sum(r.closed for r in rows), open_at_end=open_at_end,
                   new_customers=sum(r.new_customers for r in rows),
                   lost_customers=sum(r.lost_customers for r in rows))


# --- credit rating inputs ----------------------------------------------------------------------

def credit_inputs(facts: CreditFacts, attributes: CreditAttributes, *, today: date) -> CreditInputs:
    """The inputs the read model can give; every one it cannot is named in `missing_inputs`."""
    values = facts.feature_values
    rating = values.get(attributes.credit_rating) if attributes.credit_rating else None
    limit = _decimal(values.get(attributes.credit_limit)) if attributes.credit_limit else None
    overdue_value = values.get(attributes.overdue) if attributes.overdue else None
    days = values.get(attributes.days_past_due) if attributes.days_past_due else None
    inputs = CreditInputs(
        customer_id=facts.customer_id, as_of=facts.as_of,
        tenure_months=full_months(facts.onboarded_on, today) if facts.onboarded_on else None,
        age_years=facts.age_years, kyc_verified=facts.kyc_status == KYC_VERIFIED,
        risk_tolerance=facts.risk_tolerance, product_count=facts.product_count, total_assets=facts.aum,
        average_balance_3m=facts.average_aum_90d, loan_outstanding=facts.loan_outstanding,
        max_days_past_due_12m=int(days) if isinstance(days, float) and days >= 0 else None,
        open_alerts=facts.open_alerts, complaints_12m=facts.complaints_12m,
        churn_probability=facts.churn_probability,
        churn_risk_band=facts.churn_risk_band,
        credit_rating=rating.strip() if isinstance(rating, str) else "",
        credit_limit=limit if limit is not None and limit >= 0 else None,
        overdue=bool(overdue_value) if isinstance(overdue_value, float) else None, missing_inputs=())
    missing = [name for name, value in (
        ("tenure_months", inputs.tenure_months), ("age_years", inputs.age_years),
        ("product_count", inputs.product_count), ("total_assets", inputs.total_assets),
        ("average_balance_3m", inputs.average_balance_3m), ("loan_outstanding", inputs.loan_outstanding),
        ("max_days_past_due_12m", inputs.max_days_past_due_12m),
        ("churn_probability", inputs.churn_probability), ("credit_rating", inputs.credit_rating or None),
        ("credit_limit", inputs.credit_limit), ("overdue", inputs.overdue)) if value is None]
    return CreditInputs(**{**inputs.__dict__, "missing_inputs": tuple(sorted([*missing, *UNSOURCED_INPUTS]))})


def _decimal(value: str | float | None) -> Decimal | None:
    if value is None:
        return None
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        return None
    return parsed if parsed.is_finite() else None


# --- shared validation -------------------------------------------------------------------------

def _validate_interval(start: datetime | None, end: datetime | None, v: Violations) -> bool:
    if not v.check(start is not None and end is not None, "interval",
                   "is required with both start_time and end_time set"):
        return False
    assert start is not None and end is not None
    return v.check(start < end, "interval", "must end after it starts")


def _validate_ids(values: Sequence[str], field: str, v: Violations) -> None:
    v.check(len(values) <= MAX_FILTER_VALUES, field, f"must hold at most {MAX_FILTER_VALUES} values")
    for i, value in enumerate(values[:MAX_FILTER_VALUES]):
        v.check(0 < len(value) <= MAX_ID_LENGTH and value == value.strip(), f"{field}[{i}]",
                f"must be 1 to {MAX_ID_LENGTH} characters without surrounding spaces")
    v.check(len(set(values)) == len(values), field, "must not repeat a value")
