"""crm.risk.v1 report messages <- the reports' values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from google.type import interval_pb2, money_pb2

from crm.risk.v1 import churn_model_pb2, report_pb2, scoring_pb2, suitability_pb2
from crm_risk.reports.model import CauseShare, ChurnReport, CreditInputs, FlowReport, FlowRow
from crmkit.values import set_timestamps

NANOS = Decimal(1_000_000_000)


def money(amount: Decimal, currency: str) -> money_pb2.Money:
    """An amount as google.type.Money (units and nanos of the same sign)."""
    nanos_total = int((amount * NANOS).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
    units, nanos = divmod(abs(nanos_total), 1_000_000_000)
    sign = -1 if nanos_total < 0 else 1
    return money_pb2.Money(currency_code=currency, units=sign * units, nanos=sign * nanos)


def credit_inputs_to_proto(inputs: CreditInputs, currency: str) -> report_pb2.CreditRatingInputs:
    message = report_pb2.CreditRatingInputs(
        customer=f"customers/{inputs.customer_id}", tenure_months=inputs.tenure_months or 0,
        kyc_verified=inputs.kyc_verified, risk_tolerance=suitability_pb2.RiskTolerance.ValueType(inputs.risk_tolerance),
        product_count=inputs.product_count or 0, max_days_past_due_12m=inputs.max_days_past_due_12m or 0,
        open_alerts=inputs.open_alerts, complaints_12m=inputs.complaints_12m,
        churn_risk_band=scoring_pb2.RiskBand.ValueType(inputs.churn_risk_band),
        missing_inputs=inputs.missing_inputs, credit_rating=inputs.credit_rating)
    if inputs.age_years is not None:
        message.age_years = inputs.age_years
    if inputs.churn_probability is not None:
        message.churn_probability = inputs.churn_probability
    if inputs.overdue is not None:
        message.overdue = inputs.overdue
    for field, amount in (("total_assets", inputs.total_assets), ("average_balance_3m", inputs.average_balance_3m),
                          ("loan_outstanding", inputs.loan_outstanding), ("credit_limit", inputs.credit_limit)):
        if amount is not None:
            getattr(message, field).CopyFrom(money(amount, currency))
    set_timestamps(message, as_of_time=inputs.as_of)
    return message


def _causes(shares: tuple[CauseShare, ...]) -> list[report_pb2.ChurnCauseShare]:
    return [report_pb2.ChurnCauseShare(cause=report_pb2.ChurnCause.ValueType(s.cause), customers=s.customers,
                                       share=s.share) for s in shares]


def churn_report_to_proto(report: ChurnReport, currency: str) -> report_pb2.ChurnAttributionReport:
    message = report_pb2.ChurnAttributionReport(churned_customers=report.churned_customers,
                                                causes=_causes(report.causes))
    set_timestamps(message.interval, start_time=report.start, end_time=report.end)
    set_timestamps(message, compute_time=report.compute_time)
    for row in report.rows:
        message.rows.add(
            churn_type=churn_model_pb2.ChurnType.ValueType(row.churn_type), customers=row.customers, share=row.share,
            assets_lost=money(row.assets_lost, currency), median_tenure_months=row.median_tenure_months,
            top_drivers=[report_pb2.DriverShare(feature=d.feature, share=d.share) for d in row.top_drivers],
            predicted_share=row.predicted_share, causes=_causes(row.causes),
            dissatisfied_share=row.dissatisfied_share)
    return message


def _flow_row(row: FlowRow) -> report_pb2.AccountFlowRow:
    period = interval_pb2.Interval()
    set_timestamps(period, start_time=row.period_start, end_time=row.period_end)
    return report_pb2.AccountFlowRow(
        period=period, branch_id=row.branch_id, opened_accounts=row.opened, closed_accounts=row.closed,
        net_accounts=row.net, open_accounts_at_end=row.open_at_end, new_customers=row.new_customers,
        lost_customers=row.lost_customers)


def flow_report_to_proto(report: FlowReport) -> report_pb2.AccountFlowReport:
    message = report_pb2.AccountFlowReport(
        granularity=report_pb2.PeriodGranularity.ValueType(report.granularity), time_zone=report.time_zone,
        rows=[_flow_row(r) for r in report.rows], period_totals=[_flow_row(r) for r in report.period_totals],
        total=_flow_row(report.total))
    set_timestamps(message.interval, start_time=report.start, end_time=report.end)
    set_timestamps(message, compute_time=report.compute_time)
    return message
