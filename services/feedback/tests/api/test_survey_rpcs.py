"""Survey RPCs through a real in-process feedback server: definitions with versions, responses once
per customer, survey and subject, retries, bad input changing nothing, the detractor on the feed."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.feedback.v1 import channel_pb2, complaint_pb2, survey_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, error_info, field_violations, next_events, row_counts, tail_cursor

ADMIN = bearer(Role.ADMIN, subject="admin-1")
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-survey")
FEED = bearer(Role.SERVICE, subject="svc-risk")
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="QA-1")
WRITTEN = ("survey", "survey_version", "survey_response", "outbox_event", "idempotency_key")
APP_CHANNEL, WEB = channel_pb2.CHANNEL_MOBILE_APP, channel_pb2.CHANNEL_WEB


def question(question_id: str, type_: int, text: str = "How was it?", **fields: Any) -> survey_pb2.SurveyQuestion:
    return survey_pb2.SurveyQuestion(question_id=question_id, type=type_, text={"en": text, "zh-CN": "您的评价"},
                                     **fields)


def survey(**overrides: Any) -> survey_pb2.Survey:
    fields: dict[str, Any] = {
        "display_name": "Complaint follow-up NPS", "kind": survey_pb2.SURVEY_KIND_NPS,
        "channels": [APP_CHANNEL, channel_pb2.CHANNEL_BRANCH], "default_language_code": "en",
        "touchpoint": f"tp_{uuid.uuid4().hex[:8]}", "status": survey_pb2.SURVEY_STATUS_ACTIVE,
        "questions": [
            question("nps", survey_pb2.QUESTION_TYPE_SCORE, "How likely are you to recommend us?"),
            question("why", survey_pb2.QUESTION_TYPE_FREE_TEXT, "Why?"),
            question("fixed", survey_pb2.QUESTION_TYPE_SINGLE_CHOICE, "Was it fixed?", required=True, options=[
                survey_pb2.QuestionOption(option_id="yes", text={"en": "Yes"}),
                survey_pb2.QuestionOption(option_id="no", text={"en": "No"})]),
        ],
    }
    fields.update(overrides)
    return survey_pb2.Survey(**fields)


def answers(score: int | None = 3, text: str | None = "Nobody called me back.", fixed: str | None = "no"
            ) -> list[survey_pb2.Answer]:
    found = []
    if score is not None:
        found.append(survey_pb2.Answer(question_id="nps", score=score))
    if text is not None:
        found.append(survey_pb2.Answer(question_id="why", text=text))
    if fixed is not None:
        found.append(survey_pb2.Answer(question_id="fixed", choice=survey_pb2.ChoiceAnswer(option_ids=[fixed])))
    return found


def response(**overrides: Any) -> survey_pb2.SurveyResponse:
    fields: dict[str, Any] = {"customer": f"customers/C{uuid.uuid4().hex[:10].upper()}", "channel": APP_CHANNEL,
                              "subject": f"campaigns/c-{uuid.uuid4().hex[:8]}", "answers": answers(),
                              "branch_id": "BJ-001", "language_code": "en"}
    fields.update(overrides)
    return survey_pb2.SurveyResponse(**fields)


async def create(feedback: Any, message: survey_pb2.Survey, request_id: str | None = None) -> survey_pb2.Survey:
    return (await feedback.CreateSurvey(pb.CreateSurveyRequest(survey=message,
                                                               request_id=request_id or str(uuid.uuid4())),
                                        metadata=ADMIN)).survey


async def submit(feedback: Any, parent: str, message: survey_pb2.SurveyResponse, request_id: str | None = None,
                 metadata: Any = APP) -> survey_pb2.SurveyResponse:
    return (await feedback.SubmitSurveyResponse(pb.SubmitSurveyResponseRequest(
        parent=parent, response=message, request_id=request_id or str(uuid.uuid4())), metadata=metadata)).response


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def test_create_get_list_update_version_and_delete(feedback: Any) -> None:
    made = await create(feedback, survey())
    assert made.name == f"surveys/{made.survey_id}" and made.version == 1 and made.etag
    assert made.status == survey_pb2.SURVEY_STATUS_ACTIVE and made.creator == "admin-1"
    got = (await feedback.GetSurvey(pb.GetSurveyRequest(name=made.name), metadata=APP)).survey
    assert got == made
    listed = (await feedback.ListSurveys(pb.ListSurveysRequest(touchpoint=made.touchpoint,
                                                               kind=survey_pb2.SURVEY_KIND_NPS), metadata=APP)).surveys
    assert [s.name for s in listed] == [made.name]
    other_kind = pb.ListSurveysRequest(touchpoint=made.touchpoint, kind=survey_pb2.SURVEY_KIND_CES)
    assert (await feedback.ListSurveys(other_kind, metadata=APP)).surveys == []

    renamed = (await feedback.UpdateSurvey(pb.UpdateSurveyRequest(
        survey=survey_pb2.Survey(name=made.name, etag=made.etag, display_name="Renamed"),
        update_mask=FieldMask(paths=["display_name"])), metadata=ADMIN)).survey
    assert renamed.display_name == "Renamed" and renamed.version == 1 and renamed.etag != made.etag
    stale = await refused(feedback.UpdateSurvey(pb.UpdateSurveyRequest(
        survey=survey_pb2.Survey(name=made.name, etag=made.etag, display_name="Again"),
        update_mask=FieldMask(paths=["display_name"])), metadata=ADMIN))
    assert stale.code() == grpc.StatusCode.ABORTED

    first = await submit(feedback, made.name, response())
    assert first.survey_version == 1
    new_questions = [question("nps", survey_pb2.QUESTION_TYPE_SCORE, "Would you recommend us now?")]
    reworded = (await feedback.UpdateSurvey(pb.UpdateSurveyRequest(
        survey=survey_pb2.Survey(name=made.name, questions=new_questions), update_mask=FieldMask(paths=["questions"])),
        metadata=ADMIN)).survey
    assert reworded.version == 2 and [q.question_id for q in reworded.questions] == ["nps"]
    second = await submit(feedback, made.name, response(answers=answers(text=None, fixed=None)))
    assert second.survey_version == 2
    old_question = await refused(submit(feedback, made.name, response()))
    assert old_question.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a question of this survey (version 2)" in field_violations(old_question)[
        "response.answers[1].question_id"]

    undeletable = await refused(feedback.DeleteSurvey(pb.DeleteSurveyRequest(name=made.name), metadata=ADMIN))
    assert undeletable.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(undeletable).reason == "SURVEY_HAS_RESPONSES"
    back_to_draft = await refused(feedback.UpdateSurvey(pb.UpdateSurveyRequest(
        survey=survey_pb2.Survey(name=made.name, status=survey_pb2.SURVEY_STATUS_DRAFT),
        update_mask=FieldMask(paths=["status"])), metadata=ADMIN))
    assert back_to_draft.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(back_to_draft).reason == "INVALID_SURVEY_TRANSITION"
    closed = (await feedback.UpdateSurvey(pb.UpdateSurveyRequest(
        survey=survey_pb2.Survey(name=made.name, status=survey_pb2.SURVEY_STATUS_CLOSED),
        update_mask=FieldMask(paths=["status"])), metadata=ADMIN)).survey
    assert closed.status == survey_pb2.SURVEY_STATUS_CLOSED and closed.response_count == 2
    frozen = await refused(feedback.UpdateSurvey(pb.UpdateSurveyRequest(
        survey=survey_pb2.Survey(name=made.name, display_name="Too late"),
        update_mask=FieldMask(paths=["display_name"])), metadata=ADMIN))
    assert frozen.code() == grpc.StatusCode.FAILED_PRECONDITION and error_info(frozen).reason == "SURVEY_CLOSED"

    draft = await create(feedback, survey(status=survey_pb2.SURVEY_STATUS_DRAFT))
    await feedback.DeleteSurvey(pb.DeleteSurveyRequest(name=draft.name, etag=draft.etag), metadata=ADMIN)
    gone = await refused(feedback.GetSurvey(pb.GetSurveyRequest(name=draft.name), metadata=ADMIN))
    assert gone.code() == grpc.StatusCode.NOT_FOUND and error_info(gone).reason == "SURVEY_NOT_FOUND"


async def test_create_is_idempotent_and_a_taken_id_already_exists(feedback: Any, feedback_service: Any) -> None:
    survey_id = f"s-{uuid.uuid4().hex[:10]}"
    request_id = str(uuid.uuid4())
    message = survey(survey_id=survey_id)
    first = await create(feedback, message, request_id)
    before = await row_counts(feedback_service, *WRITTEN)
    assert await create(feedback, message, request_id) == first
    taken = await refused(create(feedback, survey(survey_id=survey_id)))
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await row_counts(feedback_service, *WRITTEN) == before


def _two_scores() -> list[survey_pb2.SurveyQuestion]:
    return [question("a", survey_pb2.QUESTION_TYPE_SCORE), question("b", survey_pb2.QUESTION_TYPE_SCORE)]


@pytest.mark.parametrize(("overrides", "field", "rule"), [
    ({"questions": [question("why", survey_pb2.QUESTION_TYPE_FREE_TEXT)]}, "survey.questions", "exactly one"),
    ({"questions": _two_scores()}, "survey.questions", "exactly one"),
    ({"questions": []}, "survey.questions", "1 to 20"),
    ({"kind": survey_pb2.SURVEY_KIND_UNSPECIFIED}, "survey.kind", "is required"),
    ({"channels": []}, "survey.channels", "at least one"),
    ({"channels": [WEB, WEB]}, "survey.channels", "must not repeat"),
    ({"default_language_code": "fr"}, "survey.questions[0].text", "default_language_code (fr)"),
    ({"questions": [question("nps", survey_pb2.QUESTION_TYPE_SCORE), question(
        "pick", survey_pb2.QUESTION_TYPE_SINGLE_CHOICE,
        options=[survey_pb2.QuestionOption(option_id="only", text={"en": "Only"})])]},
     "survey.questions[1].options", "2 to 20 options"),
    ({"survey_id": "Bad_ID"}, "survey.survey_id", "a-z 0-9 -"),
    ({"status": survey_pb2.SURVEY_STATUS_PAUSED}, "survey.status", "DRAFT or SURVEY_STATUS_ACTIVE"),
    ({"display_name": ""}, "survey.display_name", "is required"),
    ({"touchpoint": "Branch Visit"}, "survey.touchpoint", "short code"),
])
async def test_a_bad_survey_is_refused_naming_the_field_and_changes_nothing(
        feedback: Any, feedback_service: Any, overrides: dict[str, Any], field: str, rule: str) -> None:
    before = await row_counts(feedback_service, *WRITTEN)
    error = await refused(create(feedback, survey(**overrides)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rule in field_violations(error)[field]
    assert await row_counts(feedback_service, *WRITTEN) == before


async def test_a_detractor_response_is_stored_once_and_goes_on_the_feed(feedback: Any, feedback_service: Any) -> None:
    made = await create(feedback, survey())
    cursor = await tail_cursor(change_feed(feedback, pb.WatchChangesRequest, FEED))
    request_id = str(uuid.uuid4())
    sent = response()
    stored = await submit(feedback, made.name, sent, request_id)
    assert stored.name.startswith(f"{made.name}/responses/")
    assert (stored.score, stored.nps_category, stored.kind) == (
        3, survey_pb2.NPS_CATEGORY_DETRACTOR, survey_pb2.SURVEY_KIND_NPS)
    assert stored.customer == sent.customer and stored.subject == sent.subject
    assert stored.answers[1].text == "Nobody called me back." and not stored.masked_fields
    (event,) = await next_events(change_feed(feedback, pb.WatchChangesRequest, FEED), cursor, 1,
                                 resource_types=["crm.feedback.v1.SurveyResponse"])
    assert event.change_type == change_event_pb2.CHANGE_TYPE_CREATED and event.resource_name == stored.name
    on_feed = survey_pb2.SurveyResponse()
    assert event.payload.Unpack(on_feed)
    assert on_feed.nps_category == survey_pb2.NPS_CATEGORY_DETRACTOR and on_feed.customer == sent.customer
    assert on_feed.answers[1].text == "***" and list(on_feed.masked_fields) == ["answers.text"]

    before = await row_counts(feedback_service, *WRITTEN)
    assert await submit(feedback, made.name, sent, request_id) == stored, "a retry returns the first answer"
    second = await refused(submit(feedback, made.name, response(customer=sent.customer, subject=sent.subject)))
    assert second.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(second).reason == "SURVEY_ALREADY_ANSWERED"
    assert await row_counts(feedback_service, *WRITTEN) == before
    other_subject = await submit(feedback, made.name, response(customer=sent.customer, subject="complaints/CMP-2"))
    assert other_subject.response_id != stored.response_id
    promoter = await submit(feedback, made.name, response(answers=answers(score=10)))
    assert promoter.nps_category == survey_pb2.NPS_CATEGORY_PROMOTER
    assert (await feedback.GetSurvey(pb.GetSurveyRequest(name=made.name), metadata=ADMIN)).survey.response_count == 3


@pytest.mark.parametrize(("overrides", "field", "rule"), [
    ({"answers": answers(score=11)}, "response.answers[0].score", "0 to 10 for a NPS survey"),
    ({"answers": answers(score=-1)}, "response.answers[0].score", "0 to 10"),
    ({"answers": answers(score=None)}, "response.answers", "required question 'nps'"),
    ({"answers": answers(fixed=None)}, "response.answers", "required question 'fixed'"),
    ({"answers": answers(fixed="maybe")}, "response.answers[2].choice.option_ids", "not an option"),
    ({"answers": [*answers(), survey_pb2.Answer(question_id="ghost", score=1)]}, "response.answers[3].question_id",
     "not a question"),
    ({"answers": [survey_pb2.Answer(question_id="nps", text="ten"), *answers(score=None)]},
     "response.answers[0].score", "takes a score"),
    ({"answers": answers(text="   ")}, "response.answers[1].text", "1 to 2000"),
    ({"channel": WEB}, "response.channel", "one of the survey's channels"),
    ({"channel": 0}, "response.channel", "is required"),
    ({"customer": ""}, "response.customer", "anonymous"),
    ({"customer": "people/1"}, "response.customer", "customers/"),
    ({"subject": "not a name"}, "response.subject", "resource name"),
])
async def test_a_bad_response_is_refused_naming_the_field_and_changes_nothing(
        feedback: Any, feedback_service: Any, overrides: dict[str, Any], field: str, rule: str) -> None:
    made = await create(feedback, survey())
    before = await row_counts(feedback_service, *WRITTEN)
    error = await refused(submit(feedback, made.name, response(**overrides)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rule in field_violations(error)[field]
    assert await row_counts(feedback_service, *WRITTEN) == before


@pytest.mark.parametrize(("kind", "score", "rule"), [
    (survey_pb2.SURVEY_KIND_CSAT, 0, "1 to 5 for a CSAT survey"),
    (survey_pb2.SURVEY_KIND_CSAT, 6, "1 to 5"),
    (survey_pb2.SURVEY_KIND_CES, 8, "1 to 7 for a CES survey"),
])
async def test_each_kind_has_its_scale(feedback: Any, kind: int, score: int, rule: str) -> None:
    made = await create(feedback, survey(kind=kind))
    error = await refused(submit(feedback, made.name, response(answers=answers(score=score))))
    assert rule in field_violations(error)["response.answers[0].score"]
    fine = await submit(feedback, made.name, response(answers=answers(score=5)))
    assert fine.score == 5 and fine.nps_category == survey_pb2.NPS_CATEGORY_UNSPECIFIED


async def test_unknown_draft_and_closed_surveys_take_no_answers(feedback: Any, feedback_service: Any) -> None:
    before = await row_counts(feedback_service, "survey_response")
    unknown = await refused(submit(feedback, "surveys/no-such-survey", response()))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND and error_info(unknown).reason == "SURVEY_NOT_FOUND"
    draft = await create(feedback, survey(status=survey_pb2.SURVEY_STATUS_DRAFT))
    not_active = await refused(submit(feedback, draft.name, response()))
    assert not_active.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(not_active).reason == "SURVEY_NOT_ACTIVE"
    made = await create(feedback, survey())
    await feedback.UpdateSurvey(pb.UpdateSurveyRequest(
        survey=survey_pb2.Survey(name=made.name, status=survey_pb2.SURVEY_STATUS_CLOSED),
        update_mask=FieldMask(paths=["status"])), metadata=ADMIN)
    closed = await refused(submit(feedback, made.name, response()))
    assert closed.code() == grpc.StatusCode.FAILED_PRECONDITION and error_info(closed).reason == "SURVEY_CLOSED"
    missing_key = await refused(feedback.SubmitSurveyResponse(pb.SubmitSurveyResponseRequest(
        parent=made.name, response=response()), metadata=APP))
    assert "request_id" in field_violations(missing_key)
    assert await row_counts(feedback_service, "survey_response") == before


async def test_anonymous_surveys_accept_responses_without_a_customer(feedback: Any) -> None:
    made = await create(feedback, survey(allow_anonymous=True))
    first = await submit(feedback, made.name, response(customer=""))
    second = await submit(feedback, made.name, response(customer=""))
    assert first.customer == second.customer == "" and first.response_id != second.response_id


async def test_list_responses_filters_masks_and_needs_a_purpose(feedback: Any) -> None:
    made = await create(feedback, survey())
    detractor = await submit(feedback, made.name, response())
    promoter = await submit(feedback, made.name, response(answers=answers(score=9)))
    listed = (await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=made.name, audit=PURPOSE), metadata=ADMIN)).responses
    assert [r.name for r in listed] == [promoter.name, detractor.name]
    only_detractors = (await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent="surveys/-", nps_category=survey_pb2.NPS_CATEGORY_DETRACTOR, customer=detractor.customer,
        audit=PURPOSE), metadata=ADMIN)).responses
    assert [r.name for r in only_detractors] == [detractor.name]
    high = (await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=made.name, min_score=8, audit=PURPOSE), metadata=ADMIN)).responses
    assert [r.name for r in high] == [promoter.name]
    paged = await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=made.name, page_size=1, audit=PURPOSE), metadata=ADMIN)
    rest = await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=made.name, page_size=1, page_token=paged.next_page_token, audit=PURPOSE), metadata=ADMIN)
    assert [r.name for r in (*paged.responses, *rest.responses)] == [promoter.name, detractor.name]
    masked = (await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=made.name, audit=PURPOSE), metadata=ANALYST)).responses
    assert masked[1].answers[1].text == "***" and list(masked[1].masked_fields) == ["answers.text"]
    assert (await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=made.name, audit=PURPOSE), metadata=RM)).responses == [], "none about complaints in the RM's book"

    no_purpose = await refused(feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(parent=made.name),
                                                            metadata=ADMIN))
    assert "audit.purpose" in field_violations(no_purpose)
    inverted = await refused(feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=made.name, min_score=9, max_score=2, audit=PURPOSE), metadata=ADMIN))
    assert "max_score" in field_violations(inverted)
    unknown = await refused(feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent="surveys/no-such-survey", audit=PURPOSE), metadata=ADMIN))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


async def test_roles_survey_design_is_for_admins(feedback: Any) -> None:
    denied = await refused(feedback.CreateSurvey(
        pb.CreateSurveyRequest(survey=survey(), request_id=str(uuid.uuid4())), metadata=APP))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    made = await create(feedback, survey())
    denied_list = await refused(feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent=made.name, audit=PURPOSE), metadata=APP))
    assert denied_list.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_complaint_filed_resolved_then_answered_in_a_satisfaction_survey(feedback: Any,
                                                                                 new_complaint: Any) -> None:
    """The journey the feed's consumers see: filed, resolved, then the customer's survey answer
    about that complaint (a detractor here), each on feedback's feed."""
    open_feed = change_feed(feedback, pb.WatchChangesRequest, FEED)
    cursor = await tail_cursor(open_feed)
    filed = (await feedback.FileComplaint(pb.FileComplaintRequest(
        complaint=new_complaint(), request_id=str(uuid.uuid4())), metadata=RM)).complaint
    resolution = complaint_pb2.ComplaintResolution(outcome=complaint_pb2.RESOLUTION_OUTCOME_UPHELD,
                                                   summary="Fee refunded.")
    await feedback.ResolveComplaint(pb.ResolveComplaintRequest(name=filed.name, resolution=resolution), metadata=RM)
    followup = await create(feedback, survey(touchpoint="complaint_resolved"))
    answer = await submit(feedback, followup.name, response(customer=filed.customer, subject=filed.name,
                                                            answers=answers(score=2)))
    events = await next_events(open_feed, cursor, 1000, seconds=2)
    about = [(e.resource_type, e.change_type) for e in events if e.resource_name in (filed.name, answer.name)]
    assert about == [
        ("crm.feedback.v1.Complaint", change_event_pb2.CHANGE_TYPE_CREATED),
        ("crm.feedback.v1.Complaint", change_event_pb2.CHANGE_TYPE_EVENT),
        ("crm.feedback.v1.SurveyResponse", change_event_pb2.CHANGE_TYPE_CREATED),
    ]
    listed = (await feedback.ListSurveyResponses(pb.ListSurveyResponsesRequest(
        parent="surveys/-", subject=filed.name, audit=PURPOSE), metadata=RM)).responses
    assert [r.name for r in listed] == [answer.name], "the RM who filed the complaint sees the answer about it"
    assert listed[0].nps_category == survey_pb2.NPS_CATEGORY_DETRACTOR
