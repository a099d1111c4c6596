"""GetFeedbackKpis through a real in-process feedback server on a ManualClock: NPS, CSAT, CES,
complaint rate per 1,000 customers, the share acknowledged and resolved within SLA, and the
breakdowns by product, channel and period; bad requests named."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.type import interval_pb2

from crm.feedback.v1 import channel_pb2, complaint_pb2, survey_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, field_violations

from ..conftest import Clocked, make_complaint

ADMIN = bearer(Role.ADMIN, subject="admin-1")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-kpi")
APP_CHANNEL, BRANCH_CHANNEL = channel_pb2.CHANNEL_MOBILE_APP, channel_pb2.CHANNEL_BRANCH


def interval(start: datetime | None, end: datetime | None) -> interval_pb2.Interval:
    message = interval_pb2.Interval()
    if start is not None:
        message.start_time.FromDatetime(start)
    if end is not None:
        message.end_time.FromDatetime(end)
    return message


async def make_survey(stub: Any, kind: int) -> str:
    score = survey_pb2.SurveyQuestion(question_id="score", type=survey_pb2.QUESTION_TYPE_SCORE, text={"en": "Score?"})
    made = await stub.CreateSurvey(pb.CreateSurveyRequest(survey=survey_pb2.Survey(
        display_name="KPI survey", kind=kind, channels=[APP_CHANNEL, BRANCH_CHANNEL], default_language_code="en",
        status=survey_pb2.SURVEY_STATUS_ACTIVE, questions=[score]), request_id=str(uuid.uuid4())), metadata=ADMIN)
    return str(made.survey.name)


async def answer(stub: Any, survey: str, score: int, *, branch: str, product: str) -> None:
    await stub.SubmitSurveyResponse(pb.SubmitSurveyResponseRequest(parent=survey, request_id=str(uuid.uuid4()),
        response=survey_pb2.SurveyResponse(
            customer=f"customers/C{uuid.uuid4().hex[:10].upper()}", channel=APP_CHANNEL, branch_id=branch,
            product=product, answers=[survey_pb2.Answer(question_id="score", score=score)])), metadata=ADMIN)


async def test_kpis_over_a_period_with_sla_shares_and_breakdowns(clocked: Clocked) -> None:
    stub, clock = clocked.stub, clocked.clock
    branch = f"K-{uuid.uuid4().hex[:6]}"
    t0 = clock()
    nps_name = await make_survey(stub, survey_pb2.SURVEY_KIND_NPS)
    csat_name = await make_survey(stub, survey_pb2.SURVEY_KIND_CSAT)
    ces_name = await make_survey(stub, survey_pb2.SURVEY_KIND_CES)
    for score in (10, 9, 7, 3):
        await answer(stub, nps_name, score, branch=branch, product="credit_card")
    await answer(stub, nps_name, 9, branch=branch, product="mortgage")
    for score in (4, 5):
        await answer(stub, csat_name, score, branch=branch, product="credit_card")
    await answer(stub, ces_name, 6, branch=branch, product="credit_card")

    async def file(product: str, channel: int) -> complaint_pb2.Complaint:
        return (await stub.FileComplaint(pb.FileComplaintRequest(complaint=make_complaint(
            branch_id=branch, product=product, channel=channel,
            priority=complaint_pb2.COMPLAINT_PRIORITY_LOW), request_id=str(uuid.uuid4())), metadata=RM)).complaint

    punctual, late = await file("credit_card", APP_CHANNEL), await file("credit_card", APP_CHANNEL)
    ignored = await file("mortgage", BRANCH_CHANNEL)
    assert ignored.product == "mortgage"

    async def acknowledge(complaint: complaint_pb2.Complaint) -> None:
        await stub.AcknowledgeComplaint(pb.AcknowledgeComplaintRequest(
            name=complaint.name, response_channel=APP_CHANNEL), metadata=RM)

    clock.set(t0 + timedelta(hours=1))
    await acknowledge(punctual)
    clock.set(t0 + timedelta(hours=2))
    resolution = complaint_pb2.ComplaintResolution(outcome=complaint_pb2.RESOLUTION_OUTCOME_UPHELD, summary="Refunded.")
    await stub.ResolveComplaint(pb.ResolveComplaintRequest(name=punctual.name, resolution=resolution), metadata=RM)
    clock.set(t0 + timedelta(hours=50))
    await acknowledge(late)
    clock.set(t0 + timedelta(hours=100))

    period = interval(t0 - timedelta(hours=1), t0 + timedelta(hours=101))
    reply = await stub.GetFeedbackKpis(pb.GetFeedbackKpisRequest(
        interval=period, branch_id=branch, customer_count=2000, group_by=pb.KPI_DIMENSION_PRODUCT), metadata=ANALYST)
    kpis = reply.kpis
    assert (kpis.nps_responses, kpis.promoters, kpis.passives, kpis.detractors) == (5, 3, 1, 1)
    assert kpis.nps == pytest.approx(40.0)
    assert (kpis.csat_average, kpis.csat_responses, kpis.ces_average, kpis.ces_responses) == (4.5, 2, 6.0, 1)
    assert kpis.complaints_received == 3 and kpis.complaints_per_thousand_customers == pytest.approx(1.5)
    assert kpis.respond_met_share == pytest.approx(1 / 3), "one acknowledged in time, one late, one never"
    assert kpis.resolve_met_share == pytest.approx(1 / 3)
    assert kpis.breach_rate == pytest.approx(4 / 6)
    assert kpis.median_time_to_respond.ToTimedelta() == timedelta(hours=25.5)
    assert kpis.median_time_to_resolve.ToTimedelta() == timedelta(hours=2)
    (fees,) = kpis.complaints_by_category
    assert (fees.received, fees.resolved, fees.breached) == (3, 1, 2)

    groups = {g.key: g.kpis for g in reply.groups}
    assert sorted(groups) == ["credit_card", "mortgage"]
    assert groups["credit_card"].nps == pytest.approx(25.0) and groups["credit_card"].complaints_received == 2
    assert groups["credit_card"].respond_met_share == pytest.approx(0.5)
    assert not groups["credit_card"].HasField("complaints_per_thousand_customers")
    assert groups["mortgage"].nps == pytest.approx(100.0) and groups["mortgage"].resolve_met_share == 0

    by_channel = await stub.GetFeedbackKpis(pb.GetFeedbackKpisRequest(
        interval=period, branch_id=branch, group_by=pb.KPI_DIMENSION_CHANNEL), metadata=ANALYST)
    assert {g.key: g.kpis.complaints_received for g in by_channel.groups} == {
        "CHANNEL_MOBILE_APP": 2, "CHANNEL_BRANCH": 1}
    assert not by_channel.kpis.HasField("complaints_per_thousand_customers"), "no customer count given"
    by_day = await stub.GetFeedbackKpis(pb.GetFeedbackKpisRequest(
        interval=period, branch_id=branch, group_by=pb.KPI_DIMENSION_DAY), metadata=ANALYST)
    assert sum(g.kpis.complaints_received for g in by_day.groups) == 3
    only_cards = (await stub.GetFeedbackKpis(pb.GetFeedbackKpisRequest(
        interval=period, branch_id=branch, product="credit_card", survey=csat_name), metadata=ANALYST)).kpis
    assert (only_cards.complaints_received, only_cards.nps_responses, only_cards.csat_responses) == (2, 0, 2)
    assert not only_cards.HasField("nps")


async def test_an_empty_period_has_counts_and_no_averages(feedback: Any) -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    kpis = (await feedback.GetFeedbackKpis(pb.GetFeedbackKpisRequest(
        interval=interval(start, start + timedelta(days=1))), metadata=ANALYST)).kpis
    assert kpis.complaints_received == 0 and kpis.nps_responses == 0
    assert not kpis.HasField("nps") and not kpis.HasField("respond_met_share") and not kpis.HasField("breach_rate")


NOW = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.mark.parametrize(("fields", "field"), [
    ({}, "interval"),
    ({"interval": interval(None, NOW)}, "interval"),
    ({"interval": interval(NOW, NOW)}, "interval"),
    ({"interval": interval(NOW, NOW + timedelta(days=367))}, "interval"),
    ({"customer_count": -1}, "customer_count"),
    ({"group_by": 99}, "group_by"),
    ({"product": "Credit Card"}, "product"),
    ({"survey": "polls/1"}, "survey"),
    ({"channel": 42}, "channel"),
])
async def test_a_bad_kpi_request_names_the_field(feedback: Any, fields: dict[str, Any], field: str) -> None:
    if field != "interval":
        fields.setdefault("interval", interval(NOW, NOW + timedelta(days=30)))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.GetFeedbackKpis(pb.GetFeedbackKpisRequest(**fields), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_kpis_are_for_analysts_auditors_and_admins(feedback: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.GetFeedbackKpis(pb.GetFeedbackKpisRequest(interval=interval(NOW, NOW + timedelta(days=1))),
                                       metadata=RM)
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
