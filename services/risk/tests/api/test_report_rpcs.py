"""Credit rating inputs and the churn and account-flow reports through a real in-process server and
PostgreSQL, from rows risk's read model stores as it applies profile's feed (customers with their
relationship dates and credit attributes, derived features, holdings) beside a stored churn score
and an outflow alert: the reports count what those rows say, churn is detected once as the feed
applies, and its cause follows the evidence. Bad input is refused naming the field with nothing
written; callers outside the rules (or a manager outside their book) are refused."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.type import date_pb2, decimal_pb2, interval_pb2, money_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.common.v1 import product_risk_pb2 as pr
from crm.feedback.v1 import complaint_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2, features_pb2, holding_pb2
from crm.risk.v1 import churn_model_pb2 as cm
from crm.risk.v1 import report_pb2 as rp
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import scoring_pb2 as sc
from crm.risk.v1 import suitability_pb2 as su
from crm_risk.alerting.tables import alert
from crm_risk.customers import rules as customer_rules
from crm_risk.customers.repository import CustomerRepository
from crm_risk.customers.service import CustomerReadModel
from crm_risk.reports import complaints
from crm_risk.reports.tables import churn_event
from crm_risk.scoring.tables import churn_score
from crmkit.auth import Role
from crmkit.testing import bearer, field_violations, rows_about

SHANGHAI = ZoneInfo("Asia/Shanghai")
OFFICER = bearer(Role.RISK_OFFICER, subject="ro-reports")
ANALYST = bearer(Role.ANALYST, subject="an-reports")
MARKETER = bearer(Role.MARKETER, subject="mk-reports")
RISK = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_RISK, justification="credit review")
UPDATED = change_event_pb2.CHANGE_TYPE_UPDATED


class Feed:
    """Profile's feed as a test writes it: cursors in feed order, payloads packed as profile does."""

    def __init__(self) -> None:
        self.seq = 7_000_000

    def event(self, resource_name: str, payload: Message) -> change_event_pb2.ChangeEvent:
        self.seq += 1
        packed = any_pb2.Any()
        packed.Pack(payload)
        occurred = timestamp_pb2.Timestamp()
        occurred.FromDatetime(datetime.now(UTC))
        return change_event_pb2.ChangeEvent(
            cursor=f"{self.seq}.{self.seq}", event_id=str(uuid.uuid4()), resource_type=payload.DESCRIPTOR.full_name,
            resource_name=resource_name, change_type=UPDATED, occurred_at=occurred, payload=packed,
            actor="system:test")


def pb_date(day: date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def cny(units: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="CNY", units=units)


def customer(customer_id: str, *, branch: str, manager: str, onboarded: date, closed: date | None = None,
             **attributes: attribute_pb2.AttributeValue) -> customer_pb2.Customer:
    message = customer_pb2.Customer(
        name=f"customers/{customer_id}", customer_id=customer_id, birth_date=date_pb2.Date(year=1985),
        kyc_status=customer_pb2.KYC_STATUS_VERIFIED, risk_tolerance=customer_pb2.RISK_TOLERANCE_BALANCED,
        relationship_manager_id=manager, branch_id=branch, state=customer_pb2.CUSTOMER_STATE_ACTIVE,
        onboarded_on=pb_date(onboarded))
    if closed is not None:
        message.closed_on.CopyFrom(pb_date(closed))
    for key, value in attributes.items():
        message.attributes[key].CopyFrom(value)
    return message


def features(customer_id: str, *, aum: int, change: int, computed: datetime, age: int = 41
             ) -> features_pb2.CustomerFeatures:
    message = features_pb2.CustomerFeatures(
        name=f"customers/{customer_id}/features", aum=cny(aum), average_aum_90d=cny(aum - change // 2),
        product_count=3, lifecycle=features_pb2.LifecycleInputs(age_years=age, aum_change_90d=cny(change)))
    message.compute_time.FromDatetime(computed)
    message.last_activity_time.FromDatetime(computed - timedelta(days=3))
    return message


def holding(customer_id: str, holding_id: str, *, product: str, product_type: int, opened: date,
            closed: date | None = None, balance: int = 0) -> tuple[str, holding_pb2.Holding]:
    message = holding_pb2.Holding(
        name=f"customers/{customer_id}/holdings/{holding_id}", holding_id=holding_id, product_code=product,
        product_type=product_type, currency="CNY", reporting_balance=cny(balance), open_date=pb_date(opened),
        status=holding_pb2.HOLDING_STATUS_CLOSED if closed else holding_pb2.HOLDING_STATUS_ACTIVE)
    if closed is not None:
        message.close_date.CopyFrom(pb_date(closed))
    return message.name, message


def complaint(customer_id: str, filed: datetime) -> complaint_pb2.Complaint:
    message = complaint_pb2.Complaint(name=f"complaints/cp-{uuid.uuid4().hex[:8]}", customer=f"customers/{customer_id}",
                                      status=complaint_pb2.COMPLAINT_STATUS_OPEN)
    message.create_time.FromDatetime(filed)
    return message


def interval(start: date, end: date) -> interval_pb2.Interval:
    message = interval_pb2.Interval()
    message.start_time.FromDatetime(datetime(start.year, start.month, start.day, tzinfo=SHANGHAI))
    message.end_time.FromDatetime(datetime(end.year, end.month, end.day, tzinfo=SHANGHAI))
    return message


@pytest.fixture
async def book(risk_service: Any) -> dict[str, str]:
    """A branch of three customers as profile's feed describes them, with a stored score and an
    outflow alert for the one who leaves: c1 stays (credit attributes, a card), c2 empties and
    closes their last account on 10 February after a large outflow, c3's assets fall by 90 % (exit
    reason bank_fault, a repayment overdue) after a complaint; c1 complained ten days ago."""
    _, runtime = risk_service
    tag = uuid.uuid4().hex[:8]
    branch, manager = f"br-{tag}", f"rm-{tag}"
    c1, c2, c3 = (f"rep-{tag}-{i}" for i in (1, 2, 3))
    model = CustomerReadModel(repository=CustomerRepository(), attributes=customer_rules.AttributeNames())
    feed = Feed()
    credit = dict(credit_rating=attribute_pb2.AttributeValue(string_value="A+"),
                  credit_limit=attribute_pb2.AttributeValue(decimal_value=decimal_pb2.Decimal(value="50000.50")),
                  credit_overdue=attribute_pb2.AttributeValue(bool_value=False),
                  max_days_past_due_12m=attribute_pb2.AttributeValue(int_value=5))
    holdings = [
        holding(c1, f"h1-{tag}", product="SAV-1", product_type=2, opened=date(2026, 1, 5), balance=8000),
        holding(c1, f"h2-{tag}", product="CUR-1", product_type=1, opened=date(2025, 12, 20), closed=date(2026, 2, 10)),
        holding(c1, f"h3-{tag}", product="CC-GOLD", product_type=9, opened=date(2026, 2, 3), balance=2500),
        holding(c2, f"h4-{tag}", product="CUR-1", product_type=1, opened=date(2025, 6, 1), closed=date(2026, 2, 10)),
    ]
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.insert(churn_score).values(
            customer_id=c2, churn_model_id="m-reports", model_version=1, probability=0.81, risk_band=3,
            top_drivers=[{"feature": f, "value": 0.0, "reference": 0.0, "contribution": 0.1}
                         for f in ("aum_change_90d", "login_count_30d", "tenure_months", "age_years")],
            score_time=datetime(2026, 1, 20, tzinfo=UTC), decision_audit="decisionAudits/x", branch_id=branch,
            relationship_manager_id=manager))
        now = datetime(2026, 2, 1, tzinfo=UTC)
        await uow.execute(sa.insert(alert).values(
            alert_id=f"al-{tag}", alert_rule_id="outflow", kind=3, severity=3, customer_id=c2, summary="outflow",
            evidence=[], status=1, trigger_time=now, due_time=now + timedelta(days=1), update_time=now,
            branch_id=branch, relationship_manager_id=manager))
        events = [
            feed.event(f"customers/{c1}", customer(c1, branch=branch, manager=manager, onboarded=date(2024, 1, 10),
                                                   **credit)),
            feed.event(f"customers/{c1}/features", features(c1, aum=10_000, change=-2_000,
                                                            computed=datetime(2026, 2, 20, tzinfo=UTC))),
            feed.event(f"customers/{c2}", customer(c2, branch=branch, manager=manager, onboarded=date(2025, 6, 1))),
            feed.event(f"customers/{c2}/features", features(c2, aum=0, change=-30_000,
                                                            computed=datetime(2026, 2, 11, tzinfo=UTC))),
            *(feed.event(name, h) for name, h in holdings),
            feed.event(f"customers/{c2}", customer(c2, branch=branch, manager=manager, onboarded=date(2025, 6, 1),
                                                   closed=date(2026, 2, 10))),
            feed.event(f"customers/{c3}", customer(
                c3, branch=branch, manager="rm-other", onboarded=date(2026, 1, 15),
                exit_reason=attribute_pb2.AttributeValue(string_value="bank_fault"),
                credit_overdue=attribute_pb2.AttributeValue(bool_value=True))),
            feed.event(f"customers/{c3}/features", features(c3, aum=100, change=-900,
                                                            computed=datetime(2026, 2, 20, tzinfo=UTC))),
        ]
        applied = [await model.apply(uow, e) for e in events]
        assert all(applied)
        # A replay of the whole feed changes nothing and records no churn twice.
        assert not any([await model.apply(uow, e) for e in events])
        filed = [feed.event(c.name, c) for c in (complaint(c1, datetime.now(UTC) - timedelta(days=10)),
                                                 complaint(c3, datetime(2026, 2, 1, tzinfo=UTC)))]
        assert [await complaints.apply(uow, e) for e in filed] == [True, True]
        assert [await complaints.apply(uow, e) for e in filed] == [False, False]
    return {"branch": branch, "manager": manager, "c1": c1, "c2": c2, "c3": c3}


async def test_the_account_flow_counts_opened_closed_and_open_accounts_per_month(risk, book) -> None:
    request = pb.GetAccountFlowReportRequest(interval=interval(date(2026, 1, 1), date(2026, 3, 1)),
                                             branch_ids=[book["branch"]], time_zone="Asia/Shanghai")
    report = (await risk.GetAccountFlowReport(request, metadata=ANALYST)).report
    assert report.granularity == rp.PERIOD_GRANULARITY_MONTH and report.time_zone == "Asia/Shanghai"
    assert [(r.branch_id, r.opened_accounts, r.closed_accounts, r.net_accounts, r.open_accounts_at_end,
             r.new_customers, r.lost_customers) for r in report.rows] == [
        (book["branch"], 1, 0, 1, 3, 1, 0), (book["branch"], 1, 2, -1, 2, 0, 1)]
    assert report.rows[1].period.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 2, 1, tzinfo=SHANGHAI)
    total = report.total
    assert (total.opened_accounts, total.closed_accounts, total.net_accounts, total.open_accounts_at_end,
            total.new_customers, total.lost_customers, total.branch_id) == (2, 2, 0, 2, 1, 1, "")
    assert [t.net_accounts for t in report.period_totals] == [1, -1]
    cards = (await risk.GetAccountFlowReport(pb.GetAccountFlowReportRequest(
        interval=interval(date(2026, 1, 1), date(2026, 3, 1)), branch_ids=[book["branch"]],
        product_codes=["CC-GOLD"], granularity=rp.PERIOD_GRANULARITY_WEEK), metadata=OFFICER)).report
    assert cards.time_zone == "Asia/Shanghai", "the service's reporting time zone"
    assert cards.total.opened_accounts == 1 and cards.total.closed_accounts == 0 and len(cards.period_totals) == 9


async def test_churn_is_attributed_by_form_and_cause(risk, book) -> None:
    request = pb.GetChurnAttributionReportRequest(interval=interval(date(2026, 1, 1), date(2026, 4, 1)),
                                                  branch_id=book["branch"])
    report = (await risk.GetChurnAttributionReport(request, metadata=ANALYST)).report
    assert report.churned_customers == 2
    rows = {r.churn_type: r for r in report.rows}
    assert set(rows) == {cm.CHURN_TYPE_FULL_ATTRITION, cm.CHURN_TYPE_BALANCE_ATTRITION}
    full = rows[cm.CHURN_TYPE_FULL_ATTRITION]
    assert (full.customers, full.share, full.predicted_share, full.median_tenure_months) == (1, 0.5, 1.0, 8)
    assert full.assets_lost == cny(30_000)
    assert [(d.feature, d.share) for d in full.top_drivers] == [
        ("aum_change_90d", 1.0), ("login_count_30d", 1.0), ("tenure_months", 1.0)]
    assert [(c.cause, c.customers) for c in full.causes] == [(rp.CHURN_CAUSE_DELIBERATE, 1)]
    # c2 drained their assets before profile's closure reached risk: both forms show, each once.
    balance = rows[cm.CHURN_TYPE_BALANCE_ATTRITION]
    assert (balance.customers, balance.share, balance.predicted_share) == (2, 1.0, 0.5)
    assert balance.assets_lost == cny(30_900) and balance.dissatisfied_share == 0.5
    assert full.dissatisfied_share == 0.0
    assert {(c.cause, c.customers) for c in balance.causes} == {(rp.CHURN_CAUSE_BANK_FAULT, 1),
                                                                 (rp.CHURN_CAUSE_DELIBERATE, 1)}
    assert {(c.cause, c.customers, c.share) for c in report.causes} == {
        (rp.CHURN_CAUSE_DELIBERATE, 1, 0.5), (rp.CHURN_CAUSE_BANK_FAULT, 1, 0.5)}
    mine = (await risk.GetChurnAttributionReport(pb.GetChurnAttributionReportRequest(
        interval=request.interval, branch_id=book["branch"], relationship_manager_id=book["manager"]),
        metadata=OFFICER)).report
    assert mine.churned_customers == 1
    before = (await risk.GetChurnAttributionReport(pb.GetChurnAttributionReportRequest(
        interval=interval(date(2025, 1, 1), date(2026, 2, 10)), branch_id=book["branch"]), metadata=ANALYST)).report
    assert before.churned_customers == 0 and not before.rows


async def test_credit_rating_inputs_come_from_the_read_model_and_the_read_is_audited(risk, risk_service,
                                                                                     book) -> None:
    name = f"customers/{book['c1']}"
    audits = await rows_about(risk_service, "audit_record", name)
    inputs = (await risk.GetCreditRatingInputs(pb.GetCreditRatingInputsRequest(customer=name, audit=RISK),
                                               metadata=OFFICER)).inputs
    assert inputs.customer == name and inputs.kyc_verified and inputs.product_count == 3
    assert inputs.age_years == 41 and inputs.tenure_months >= 34
    assert inputs.total_assets == cny(10_000) and inputs.average_balance_3m == cny(11_000)
    assert inputs.loan_outstanding == cny(2_500) and inputs.credit_limit == money_pb2.Money(
        currency_code="CNY", units=50_000, nanos=500_000_000)
    assert inputs.credit_rating == "A+" and inputs.HasField("overdue") and not inputs.overdue
    assert inputs.max_days_past_due_12m == 5 and inputs.open_alerts == 0 and inputs.complaints_12m == 1
    assert not inputs.HasField("churn_probability") and inputs.churn_risk_band == sc.RISK_BAND_UNSPECIFIED
    assert set(inputs.missing_inputs) == {"average_balance_12m", "average_monthly_inflow_6m",
                                          "average_monthly_outflow_6m", "payroll_months_12m", "churn_probability"}
    assert await rows_about(risk_service, "audit_record", name) == audits + 1
    own = bearer(Role.RELATIONSHIP_MANAGER, subject=book["manager"])
    scored = (await risk.GetCreditRatingInputs(pb.GetCreditRatingInputsRequest(
        customer=f"customers/{book['c2']}", audit=RISK), metadata=own)).inputs
    assert scored.churn_probability == pytest.approx(0.81) and scored.open_alerts == 1
    assert scored.churn_risk_band == sc.RISK_BAND_HIGH


async def test_the_overdue_flag_is_a_suitability_fact(risk, book) -> None:
    overdue, fine = f"customers/{book['c3']}", f"customers/{book['c1']}"
    campaign = bearer(Role.SERVICE, subject="svc-campaign")
    checks = (await risk.CheckSuitabilityBatch(pb.CheckSuitabilityBatchRequest(
        customers=[overdue, fine], product_code="FUND-R2", product_risk_level=pr.PRODUCT_RISK_LEVEL_R2),
        metadata=campaign)).results
    assert [r.outcome for r in checks] == [su.SUITABILITY_OUTCOME_DENY, su.SUITABILITY_OUTCOME_ALLOW]
    assert [r.code for r in checks[0].reasons] == [su.SUITABILITY_REASON_CODE_CREDIT_OVERDUE]
    sale = (await risk.CheckSuitability(pb.CheckSuitabilityRequest(
        customer=overdue, product_code="FUND-R2", product_risk_level=pr.PRODUCT_RISK_LEVEL_R2,
        purpose=su.SUITABILITY_PURPOSE_SALE), metadata=campaign)).result
    assert sale.outcome == su.SUITABILITY_OUTCOME_NEEDS_IN_PERSON_REVIEW
    deposit = (await risk.CheckSuitability(pb.CheckSuitabilityRequest(
        customer=overdue, product_code="DEP-R1", product_risk_level=pr.PRODUCT_RISK_LEVEL_R1),
        metadata=campaign)).result
    assert deposit.outcome == su.SUITABILITY_OUTCOME_ALLOW
    inputs = (await risk.GetCreditRatingInputs(pb.GetCreditRatingInputsRequest(customer=overdue, audit=RISK),
                                               metadata=OFFICER)).inputs
    assert inputs.HasField("overdue") and inputs.overdue


async def test_bad_input_is_refused_naming_the_field_and_writes_nothing(risk, risk_service, book) -> None:
    name = f"customers/{book['c1']}"
    audits = await rows_about(risk_service, "audit_record", name)
    cases = [
        (risk.GetCreditRatingInputs, pb.GetCreditRatingInputsRequest(customer=name), {"audit.purpose"}),
        (risk.GetCreditRatingInputs, pb.GetCreditRatingInputsRequest(customer="clients/1", audit=RISK),
         {"customer"}),
        (risk.GetChurnAttributionReport, pb.GetChurnAttributionReportRequest(), {"interval"}),
        (risk.GetChurnAttributionReport, pb.GetChurnAttributionReportRequest(
            interval=interval(date(2020, 1, 1), date(2023, 1, 2))), {"interval"}),
        (risk.GetChurnAttributionReport, pb.GetChurnAttributionReportRequest(
            interval=interval_pb2.Interval(start_time=timestamp_pb2.Timestamp(seconds=1))), {"interval"}),
        (risk.GetAccountFlowReport, pb.GetAccountFlowReportRequest(
            interval=interval(date(2025, 1, 1), date(2026, 3, 1)), granularity=rp.PERIOD_GRANULARITY_DAY),
         {"interval"}),
        (risk.GetAccountFlowReport, pb.GetAccountFlowReportRequest(
            interval=interval(date(2026, 1, 1), date(2026, 3, 1)), time_zone="Asia/Atlantis"), {"time_zone"}),
        (risk.GetAccountFlowReport, pb.GetAccountFlowReportRequest(
            interval=interval(date(2026, 3, 1), date(2026, 1, 1)), branch_ids=[""]), {"interval", "branch_ids[0]"}),
    ]
    for call, request, fields in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(request, metadata=OFFICER)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert set(field_violations(refused.value)) == fields, request
    assert await rows_about(risk_service, "audit_record", name) == audits
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await risk.GetCreditRatingInputs(pb.GetCreditRatingInputsRequest(customer="customers/nobody-here",
                                                                         audit=RISK), metadata=OFFICER)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_only_the_allowed_roles_and_a_managers_own_book(risk, risk_service, book) -> None:
    _, runtime = risk_service
    name = f"customers/{book['c3']}"
    audits = await rows_about(risk_service, "audit_record", name)
    flow = pb.GetAccountFlowReportRequest(interval=interval(date(2026, 1, 1), date(2026, 3, 1)))
    churn = pb.GetChurnAttributionReportRequest(interval=flow.interval)
    manager = bearer(Role.RELATIONSHIP_MANAGER, subject=book["manager"])
    refusals = [
        (risk.GetAccountFlowReport, flow, MARKETER, grpc.StatusCode.PERMISSION_DENIED),
        (risk.GetAccountFlowReport, flow, manager, grpc.StatusCode.PERMISSION_DENIED),
        (risk.GetChurnAttributionReport, churn, bearer(Role.CHANNEL_APP), grpc.StatusCode.PERMISSION_DENIED),
        (risk.GetCreditRatingInputs, pb.GetCreditRatingInputsRequest(customer=name, audit=RISK), ANALYST,
         grpc.StatusCode.PERMISSION_DENIED),
        # c3 belongs to another manager's book.
        (risk.GetCreditRatingInputs, pb.GetCreditRatingInputsRequest(customer=name, audit=RISK), manager,
         grpc.StatusCode.PERMISSION_DENIED),
        (risk.GetAccountFlowReport, flow, (), grpc.StatusCode.UNAUTHENTICATED),
    ]
    for call, request, metadata, code in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(request, metadata=metadata)
        assert refused.value.code() == code
    assert await rows_about(risk_service, "audit_record", name) == audits
    async with runtime.db.unit_of_work(read_only=True) as uow:
        recorded = await uow.scalar(sa.select(sa.func.count()).select_from(churn_event)
                                    .where(churn_event.c.branch_id == book["branch"]))
    assert recorded == 3
