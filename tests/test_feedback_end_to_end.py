"""Issue 13's "done when", across real processes (profile and feedback, each on its own database):
a customer in profile -> in feedback's read model -> a complaint filed for them (one for a customer
profile does not have is refused) -> the complaint on feedback's change feed -> acknowledged and
resolved, each step on the feed -> a satisfaction survey answered about that complaint, on the feed
and in the KPIs; a second answer about the same complaint is refused and changes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.type import interval_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2, survey_pb2
from crm.feedback.v1 import feedback_service_pb2_grpc as feedback_grpc
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_feedback.app import SPEC as FEEDBACK
from crm_profile.app import SPEC as PROFILE
from crmkit.auth import Role
from crmkit.db import Database
from crmkit.testing import (
    TEST_JWT_SECRET,
    bearer,
    change_feed,
    error_info,
    eventually,
    free_port,
    migrated_database,
    read_changes,
)

pytestmark = pytest.mark.slow

pb = feedback_service_pb2
ADMIN = bearer(Role.ADMIN, subject="steward-1")
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
MANAGER = "rm-e2e"
RM = bearer(Role.RELATIONSHIP_MANAGER, subject=MANAGER)
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
RISK = bearer(Role.SERVICE, subject="svc-risk")
CASE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT, justification="e2e case")
COMPLAINT_TYPE, RESPONSE_TYPE = "crm.feedback.v1.Complaint", "crm.feedback.v1.SurveyResponse"


def _env(prefix: str, url: str, port: int) -> dict[str, str]:
    return {"CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1",
            "CRM_ACCESS_LOG": "false", f"CRM_{prefix}_DATABASE_URL": url, f"CRM_{prefix}_PORT": str(port)}


async def test_complaint_to_satisfaction_survey_across_real_processes(database_factory: Any, launcher: Any,
                                                                      service_env: Any) -> None:
    profile_url = await migrated_database(database_factory, PROFILE)
    feedback_url = await migrated_database(database_factory, FEEDBACK)
    profile_port, feedback_port = free_port(), free_port()
    profile_env = {**service_env.profile(profile_url, profile_port), "CRM_PROFILE_FEED_POLL_SECONDS": "0.05",
                   "PYTHONUNBUFFERED": "1", "CRM_ACCESS_LOG": "false"}
    feedback_env = {**_env("FEEDBACK", feedback_url, feedback_port), "CRM_FEEDBACK_FEED_POLL_SECONDS": "0.05",
                    "CRM_FEEDBACK_PROFILE_TARGET": f"127.0.0.1:{profile_port}", "CRM_FEEDBACK_SEGMENT_TARGET": "",
                    "CRM_FEEDBACK_PEER_FEED_MAX_BACKOFF_SECONDS": "0.5", "CRM_FEEDBACK_SLA_CLOCK_SECONDS": "1"}
    profile_process = launcher.start("profile", "crm_profile", profile_env, "serve")
    feedback_process = launcher.start("feedback", "crm_feedback", feedback_env, "serve")
    await launcher.wait_serving(f"127.0.0.1:{profile_port}", profile_process, timeout=60)
    await launcher.wait_serving(f"127.0.0.1:{feedback_port}", feedback_process, timeout=60)

    feedback_db = await Database.open(feedback_url, pool_size=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}") as profile_channel, \
            grpc.aio.insecure_channel(f"127.0.0.1:{feedback_port}") as feedback_channel:
        try:
            await _journey(profile_service_pb2_grpc.ProfileServiceStub(profile_channel),
                           feedback_grpc.FeedbackServiceStub(feedback_channel), feedback_db)
        finally:
            await feedback_db.dispose()


async def _journey(profile: Any, feedback: Any, feedback_db: Database) -> None:
    feed = change_feed(feedback, pb.WatchChangesRequest, RISK)
    customer_id = f"E{uuid.uuid4().hex[:10].upper()}"
    customer = f"customers/{customer_id}"
    branch = f"E2E-{customer_id[-4:]}"

    # The customer is created in profile, with a relationship manager; feedback learns of them
    # from profile's change feed (its `known_customer` read model).
    await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
        customer=customer_pb2.Customer(customer_id=customer_id, full_name="Li Na", branch_id=branch,
                                       customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL,
                                       relationship_manager_id=MANAGER),
        request_id=str(uuid.uuid4())), metadata=ADMIN)

    async def known() -> int:
        async with feedback_db.engine.connect() as connection:
            return int((await connection.execute(sa.text(
                "SELECT count(*) FROM known_customer WHERE customer_id = :id AND state = 1"),
                {"id": customer_id})).scalar_one())
    await eventually(known, seconds=30, what="the customer in feedback's read model of profile")

    # A complaint for a customer profile does not have is refused; nothing is written.
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await feedback.FileComplaint(pb.FileComplaintRequest(complaint=complaint_pb2.Complaint(
            customer="customers/NOSUCH999", channel=channel_pb2.CHANNEL_MOBILE_APP, description="Who am I?"),
            request_id=str(uuid.uuid4())), metadata=APP)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(unknown.value, domain="feedback.crm").reason == "CUSTOMER_NOT_FOUND"

    # Filed from the mobile app: open, on the 48-hour clock, in the customer's manager's book.
    filed = (await feedback.FileComplaint(pb.FileComplaintRequest(complaint=complaint_pb2.Complaint(
        customer=customer, channel=channel_pb2.CHANNEL_MOBILE_APP,
        category=classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES, subcategory="annual_fee",
        priority=complaint_pb2.COMPLAINT_PRIORITY_HIGH, description="Charged the annual fee twice.",
        branch_id=branch), request_id=str(uuid.uuid4())), metadata=APP)).complaint
    assert filed.status == complaint_pb2.COMPLAINT_STATUS_OPEN
    respond_by = filed.sla.respond_by.ToDatetime(tzinfo=UTC)
    received = filed.receive_time.ToDatetime(tzinfo=UTC)
    assert respond_by - received <= timedelta(hours=48)
    assert await _count(feedback_db, "complaint") == 1, "the unknown customer's complaint was not written"

    # The event on feedback's change feed, as a platform service (risk, campaign) reads it: masked.
    [created] = await _events(feed, "", 1)
    assert (created.resource_name, created.change_type, created.actor) == (
        filed.name, change_event_pb2.CHANGE_TYPE_CREATED, "mobile-app")
    on_feed = complaint_pb2.Complaint()
    assert created.payload.Unpack(on_feed)
    assert (on_feed.customer, on_feed.status) == (customer, complaint_pb2.COMPLAINT_STATUS_OPEN)
    assert on_feed.description == "***" and list(on_feed.masked_fields) == ["description"]

    # The customer's manager works it: acknowledged, then resolved with a note; each step on the feed.
    acknowledged = (await feedback.AcknowledgeComplaint(pb.AcknowledgeComplaintRequest(
        name=filed.name, response_channel=channel_pb2.CHANNEL_CALL_CENTRE, note="Called the customer back.",
        request_id=str(uuid.uuid4())), metadata=RM)).complaint
    assert acknowledged.status == complaint_pb2.COMPLAINT_STATUS_ACKNOWLEDGED
    resolved = (await feedback.ResolveComplaint(pb.ResolveComplaintRequest(
        name=filed.name, etag=acknowledged.etag, request_id=str(uuid.uuid4()),
        resolution=complaint_pb2.ComplaintResolution(
            outcome=complaint_pb2.RESOLUTION_OUTCOME_UPHELD, summary="Second fee refunded.",
            root_cause="duplicate_batch_run")), metadata=RM)).complaint
    assert resolved.status == complaint_pb2.COMPLAINT_STATUS_RESOLVED
    steps = await _events(feed, created.cursor, 2)
    assert [e.change_type for e in steps] == [change_event_pb2.CHANGE_TYPE_EVENT] * 2
    actions = []
    for event in steps:
        step = complaint_pb2.ComplaintStepEvent()
        assert event.payload.Unpack(step) and event.resource_name == filed.name
        actions.append((step.step.action, step.complaint.status))
    assert actions == [
        (complaint_pb2.COMPLAINT_ACTION_ACKNOWLEDGED, complaint_pb2.COMPLAINT_STATUS_ACKNOWLEDGED),
        (complaint_pb2.COMPLAINT_ACTION_RESOLVED, complaint_pb2.COMPLAINT_STATUS_RESOLVED)]

    # A satisfaction survey about the resolved complaint, answered in the app.
    survey = (await feedback.CreateSurvey(pb.CreateSurveyRequest(survey=survey_pb2.Survey(
        display_name="After your complaint", kind=survey_pb2.SURVEY_KIND_CSAT,
        channels=[channel_pb2.CHANNEL_MOBILE_APP],
        default_language_code="en", touchpoint=f"complaint_{customer_id.lower()}",
        status=survey_pb2.SURVEY_STATUS_ACTIVE, questions=[
            survey_pb2.SurveyQuestion(question_id="csat", type=survey_pb2.QUESTION_TYPE_SCORE,
                                      text={"en": "How satisfied are you with how we handled it?"}),
            survey_pb2.SurveyQuestion(question_id="why", type=survey_pb2.QUESTION_TYPE_FREE_TEXT,
                                      text={"en": "Anything to add?"})]),
        request_id=str(uuid.uuid4())), metadata=ADMIN)).survey
    answer = survey_pb2.SurveyResponse(
        customer=customer, channel=channel_pb2.CHANNEL_MOBILE_APP, subject=filed.name, branch_id=branch,
        language_code="en", answers=[survey_pb2.Answer(question_id="csat", score=4),
                                     survey_pb2.Answer(question_id="why", text="Quick refund, thanks.")])
    stored = (await feedback.SubmitSurveyResponse(pb.SubmitSurveyResponseRequest(
        parent=survey.name, response=answer, request_id=str(uuid.uuid4())), metadata=APP)).response
    assert (stored.score, stored.kind, stored.subject, stored.customer) == (
        4, survey_pb2.SURVEY_KIND_CSAT, filed.name, customer)
    [answered] = await _events(feed, steps[-1].cursor, 1)
    assert (answered.resource_type, answered.resource_name) == (RESPONSE_TYPE, stored.name)
    response_on_feed = survey_pb2.SurveyResponse()
    assert answered.payload.Unpack(response_on_feed)
    assert response_on_feed.subject == filed.name and response_on_feed.answers[1].text == "***"

    # One answer per customer, survey and subject: a second is refused and changes nothing.
    before = await _count(feedback_db, "survey_response")
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await feedback.SubmitSurveyResponse(pb.SubmitSurveyResponseRequest(
            parent=survey.name, response=answer, request_id=str(uuid.uuid4())), metadata=APP)
    assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(again.value).reason == "SURVEY_ALREADY_ANSWERED"
    assert await _count(feedback_db, "survey_response") == before == 1

    # The complaint's answers, found by their subject; the branch's KPIs count both.
    listed = (await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=survey.name, subject=filed.name, audit=CASE), metadata=ADMIN)).responses
    assert [r.name for r in listed] == [stored.name]
    period = interval_pb2.Interval()
    period.start_time.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
    period.end_time.FromDatetime(datetime.now(UTC) + timedelta(days=3))  # clocks count by due time
    kpis = (await feedback.GetFeedbackKpis(pb.GetFeedbackKpisRequest(interval=period, branch_id=branch),
                                           metadata=ANALYST)).kpis
    assert (kpis.complaints_received, kpis.csat_responses, kpis.csat_average) == (1, 1, 4.0)
    assert (kpis.respond_met_share, kpis.resolve_met_share) == (1.0, 1.0), "answered and resolved within 48 h"


async def _events(feed: Any, after: str, wanted: int) -> list[change_event_pb2.ChangeEvent]:
    """The next `wanted` complaint and survey-response events after `after` on feedback's feed."""
    call = feed(after_cursor=after, resource_types=[COMPLAINT_TYPE, RESPONSE_TYPE])
    events = await read_changes(call, until=lambda got: len(got) >= wanted, seconds=15, strict=True)
    assert len(events) == wanted, [(e.resource_type, e.change_type) for e in events]
    return list(events)


async def _count(db: Database, table: str) -> int:
    async with db.engine.connect() as connection:
        return int((await connection.execute(sa.select(sa.func.count()).select_from(sa.table(table)))).scalar_one())
