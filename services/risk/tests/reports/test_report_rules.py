"""The reports' pure rules: periods cut at the calendar boundaries of a time zone (partial ends kept,
at most 400), per-day counts summed into periods with accounts open at each end, churn detected
once per type from what profile's data shows, its cause from the evidence in order of precedence,
and the credit inputs naming every input they cannot give."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from crm_risk.reports import rules
from crm_risk.reports.model import (
    ChurnCase,
    ChurnCause,
    ChurnSnapshot,
    ChurnType,
    CreditFacts,
    FlowCounts,
    Granularity,
)
from crmkit.errors import InvalidArgument
from crmkit.validation import Violations

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(day: date, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def test_months_are_cut_in_the_time_zone_with_partial_ends_as_they_are() -> None:
    start = datetime(2026, 1, 15, 3, tzinfo=UTC)   # 11:00 on 15 January in Shanghai
    end = at(date(2026, 4, 1))
    periods = rules.cut_periods(start, end, Granularity.MONTH, SHANGHAI, limit=400)
    assert periods is not None
    assert [(p.start, p.end) for p in periods] == [
        (start, at(date(2026, 2, 1))), (at(date(2026, 2, 1)), at(date(2026, 3, 1))),
        (at(date(2026, 3, 1)), at(date(2026, 4, 1)))]
    # A day counts where its local midnight falls: 15 January began before the interval did.
    assert periods[0].first_day == date(2026, 1, 16) and periods[-1].end_day == date(2026, 4, 1)


@pytest.mark.parametrize(("granularity", "count", "first_end"), [
    (Granularity.DAY, 10, date(2026, 3, 3)),
    (Granularity.WEEK, 2, date(2026, 3, 9)),      # ISO weeks: Monday 9 March starts the second
    (Granularity.QUARTER, 1, date(2026, 3, 12)),
    (Granularity.YEAR, 1, date(2026, 3, 12)),
])
def test_every_granularity_cuts_at_its_calendar_boundary(granularity: Granularity, count: int,
                                                          first_end: date) -> None:
    periods = rules.cut_periods(at(date(2026, 3, 2)), at(date(2026, 3, 12)), granularity, SHANGHAI, limit=400)
    assert periods is not None and len(periods) == count and periods[0].end == at(first_end)


def bad_fields(*args: object) -> set[str]:
    v = Violations()
    rules.validate_flow_request(*args, v)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as raised:
        v.raise_if_any()
    return {item.field for item in raised.value.violations}


def test_more_than_400_periods_and_unknown_zones_are_refused_naming_the_field() -> None:
    assert bad_fields(at(date(2025, 1, 1)), at(date(2026, 3, 1)), Granularity.DAY, "Asia/Shanghai", [], []) \
        == {"interval"}
    assert bad_fields(at(date(2026, 3, 1)), at(date(2026, 2, 1)), 0, "Mars/Olympus", ["b", "b"], [""]) \
        == {"interval", "time_zone", "branch_ids", "product_codes[0]"}
    assert bad_fields(None, None, 9, "Asia/Shanghai", [], []) == {"interval", "granularity"}


def test_counts_sum_into_periods_with_the_accounts_open_at_each_end() -> None:
    periods = rules.cut_periods(at(date(2026, 1, 1)), at(date(2026, 3, 1)), Granularity.MONTH, SHANGHAI, limit=400)
    assert periods is not None
    counts = FlowCounts(
        opened={("br-1", date(2026, 1, 5)): 3, ("br-1", date(2026, 2, 9)): 1, ("br-2", date(2026, 2, 1)): 2},
        closed={("br-1", date(2026, 1, 31)): 5, ("br-2", date(2026, 3, 1)): 9},  # 1 March is outside
        lost_customers={("br-1", date(2026, 1, 31)): 1}, open_at_start={"br-1": 10})
    report = rules.flow_report(counts, periods=periods, granularity=Granularity.MONTH, time_zone="Asia/Shanghai",
                               start=periods[0].start, end=periods[-1].end, now=datetime.now(UTC))
    assert [(r.branch_id, r.opened, r.closed, r.net, r.open_at_end, r.lost_customers) for r in report.rows] == [
        ("br-1", 3, 5, -2, 8, 1), ("br-1", 1, 0, 1, 9, 0), ("br-2", 2, 0, 2, 2, 0)]
    assert [(t.opened, t.closed, t.open_at_end) for t in report.period_totals] == [(3, 5, 8), (3, 0, 11)]
    assert (report.total.opened, report.total.closed, report.total.net, report.total.open_at_end) == (6, 5, 1, 11)


def snapshot(**overrides: object) -> ChurnSnapshot:
    values: dict[str, object] = dict(
        customer_id="c-1", relationship_manager_id="rm-1", branch_id="br-1", onboarded_on=date(2020, 5, 20),
        closed_on=None, aum=Decimal(100), aum_change_90d=Decimal(-20),
        last_activity_at=datetime(2026, 5, 1, tzinfo=UTC),
        features_computed_at=datetime(2026, 6, 1, tzinfo=UTC), exit_reason="", score_band=3,
        score_drivers=("aum_change_90d", "complaints_90d", "tenure_months", "age_years"),
        score_time=datetime(2026, 4, 1, tzinfo=UTC))
    values.update(overrides)
    return ChurnSnapshot(**values)  # type: ignore[arg-type]


def test_churn_is_detected_from_the_closure_the_assets_and_the_last_activity() -> None:
    assert rules.detect(snapshot(), last_balance_attrition_on=None) == []
    [closed] = rules.detect(snapshot(closed_on=date(2026, 6, 10)), last_balance_attrition_on=None)
    assert (closed.churn_type, closed.detected_on, closed.tenure_months) == (ChurnType.FULL_ATTRITION,
                                                                             date(2026, 6, 10), 72)
    assert closed.assets_before == Decimal(120) and closed.score_drivers == ("aum_change_90d", "complaints_90d",
                                                                             "tenure_months")
    [bank] = rules.detect(snapshot(closed_on=date(2026, 6, 10), exit_reason=" Involuntary"),
                          last_balance_attrition_on=None)
    assert bank.churn_type == ChurnType.INVOLUNTARY
    found = rules.detect(snapshot(aum=Decimal(40), aum_change_90d=Decimal(-60),
                                  last_activity_at=datetime(2025, 11, 1, tzinfo=UTC)), last_balance_attrition_on=None)
    assert [(d.churn_type, d.detected_on) for d in found] == [
        (ChurnType.DORMANCY, date(2026, 4, 30)), (ChurnType.BALANCE_ATTRITION, date(2026, 6, 1))]
    assert found[0].score_band == 3, "scored on 1 April, before the dormancy began"
    again = rules.detect(snapshot(aum=Decimal(40), aum_change_90d=Decimal(-60)),
                         last_balance_attrition_on=date(2026, 4, 1))
    assert again == [], "one balance attrition per 90 days"
    late = rules.detect(snapshot(closed_on=date(2026, 3, 1)), last_balance_attrition_on=None)
    assert late[0].score_band == 0 and late[0].score_drivers == (), "a score made after the churn is not its warning"


def case(customer_id: str, kind: ChurnType, **overrides: object) -> ChurnCase:
    values: dict[str, object] = dict(
        customer_id=customer_id, churn_type=kind, detected_on=date(2026, 6, 1), assets_before=Decimal(1000),
        assets_now=Decimal(100), tenure_months=24, score_band=3, score_drivers=("aum_change_90d",), exit_reason="",
        outflow_alerts=0)
    values.update(overrides)
    return ChurnCase(**values)  # type: ignore[arg-type]


def test_the_cause_follows_the_evidence_in_order() -> None:
    assert rules.cause_of(case("a", ChurnType.FULL_ATTRITION, exit_reason="natural", complaints=1)) \
        == ChurnCause.NATURAL
    assert rules.cause_of(case("a", ChurnType.FULL_ATTRITION, complaints=1, outflow_alerts=2)) \
        == ChurnCause.BANK_FAULT
    assert rules.cause_of(case("a", ChurnType.FULL_ATTRITION, outflow_alerts=1)) == ChurnCause.DELIBERATE
    assert rules.cause_of(case("a", ChurnType.FULL_ATTRITION, exit_reason="Natural")) == ChurnCause.NATURAL
    assert rules.cause_of(case("a", ChurnType.FULL_ATTRITION, exit_reason="unhappy")) == ChurnCause.UNDETERMINED


def test_the_report_counts_each_customer_once_per_type_and_once_by_cause() -> None:
    cases = [
        case("a", ChurnType.FULL_ATTRITION, exit_reason="natural", tenure_months=10, complaints=1),
        case("b", ChurnType.FULL_ATTRITION, outflow_alerts=1, tenure_months=30, score_band=2,
             score_drivers=("tenure_months", "aum_change_90d")),
        case("c", ChurnType.DORMANCY, assets_before=None, tenure_months=None, score_drivers=()),
        case("c", ChurnType.DORMANCY, detected_on=date(2026, 6, 5)),
        case("a", ChurnType.BALANCE_ATTRITION, detected_on=date(2026, 5, 1), exit_reason="natural"),
    ]
    now = datetime.now(UTC)
    report = rules.churn_report(cases, start=now - timedelta(days=90), end=now, now=now)
    assert report.churned_customers == 3
    full, *others = report.rows
    assert (full.churn_type, full.customers, full.share) == (ChurnType.FULL_ATTRITION, 2, 2 / 3)
    assert full.assets_lost == Decimal(1800) and full.median_tenure_months == 20 and full.predicted_share == 0.5
    assert full.dissatisfied_share == 0.5
    assert [(d.feature, d.share) for d in full.top_drivers] == [("aum_change_90d", 1.0), ("tenure_months", 0.5)]
    assert {(c.cause, c.customers) for c in full.causes} == {(ChurnCause.NATURAL, 1), (ChurnCause.DELIBERATE, 1)}
    assert {r.churn_type: r.customers for r in others} == {ChurnType.DORMANCY: 1, ChurnType.BALANCE_ATTRITION: 1}
    # Customer a's first churn is the balance attrition of 1 May (declared natural).
    assert {(c.cause, c.customers) for c in report.causes} == {
        (ChurnCause.NATURAL, 1), (ChurnCause.DELIBERATE, 1), (ChurnCause.UNDETERMINED, 1)}


def test_credit_inputs_name_every_input_they_cannot_give() -> None:
    facts = CreditFacts(
        customer_id="c-1", relationship_manager_id="rm-1", as_of=datetime.now(UTC), onboarded_on=date(2024, 1, 31),
        age_years=41, kyc_status=2, risk_tolerance=3, product_count=4, aum=Decimal("1234.5"), average_aum_90d=None,
        feature_values={"credit_rating": "AA", "credit_limit": "50000.00", "credit_overdue": 0.0,
                        "max_days_past_due_12m": 12.0},
        loan_outstanding=Decimal(0), open_alerts=1, churn_probability=None, churn_risk_band=0, complaints_12m=2)
    inputs = rules.credit_inputs(facts, rules.CreditAttributes(), today=date(2026, 12, 7))
    assert inputs.tenure_months == 34 and inputs.kyc_verified and inputs.credit_rating == "AA"
    assert inputs.credit_limit == Decimal("50000.00") and inputs.overdue is False and inputs.max_days_past_due_12m == 12
    assert inputs.missing_inputs == tuple(sorted({"average_balance_3m", "churn_probability", *rules.UNSOURCED_INPUTS}))
    bare = rules.credit_inputs(facts, rules.CreditAttributes(credit_rating="", credit_limit="", overdue="",
                                                              days_past_due=""), today=date(2026, 12, 7))
    assert {"credit_rating", "credit_limit", "overdue", "max_days_past_due_12m"} <= set(bare.missing_inputs)
