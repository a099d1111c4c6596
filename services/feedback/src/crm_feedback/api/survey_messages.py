"""Survey protos <-> domain values. Nothing else: no rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message

from crm.feedback.v1 import channel_pb2, survey_pb2
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.surveys.model import (
    Answer,
    Question,
    QuestionOption,
    ResponseDraft,
    ResponseFilter,
    ResponseView,
    Survey,
    SurveyFilter,
    Window,
)
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.values import set_timestamps


def _timestamp(parent: Message, field: str, path: str, bad: list[FieldViolation]) -> datetime | None:
    if not parent.HasField(field):
        return None
    try:
        return getattr(parent, field).ToDatetime(tzinfo=UTC)
    except ValueError:
        bad.append(FieldViolation(path, "is not a valid timestamp"))
        return None


def _window(parent: Message, field: str, bad: list[FieldViolation]) -> tuple[datetime | None, datetime | None]:
    if not parent.HasField(field):
        return None, None
    interval = getattr(parent, field)
    return (_timestamp(interval, "start_time", f"{field}.start_time", bad),
            _timestamp(interval, "end_time", f"{field}.end_time", bad))


def survey_to_domain(message: survey_pb2.Survey) -> Survey:
    """The survey as sent; output-only fields ignored."""
    bad: list[FieldViolation] = []
    start, end = _window(message, "response_window", bad)
    if bad:
        raise InvalidArgument([FieldViolation(f"survey.{v.field}", v.description) for v in bad])
    return Survey(
        survey_id=message.survey_id, display_name=message.display_name, description=message.description,
        kind=message.kind, channels=tuple(message.channels), touchpoint=message.touchpoint,
        default_language_code=message.default_language_code, response_window=Window(start, end),
        allow_anonymous=message.allow_anonymous, status=message.status,
        questions=tuple(Question(question_id=q.question_id, type=q.type, text=dict(q.text), required=q.required,
                                 options=tuple(QuestionOption(o.option_id, dict(o.text)) for o in q.options))
                        for q in message.questions),
    )


def survey_to_proto(survey: Survey) -> survey_pb2.Survey:
    message = survey_pb2.Survey(
        name=survey.name, survey_id=survey.survey_id, etag=survey.etag, display_name=survey.display_name,
        description=survey.description, kind=survey_pb2.SurveyKind.ValueType(survey.kind),
        channels=[channel_pb2.Channel.ValueType(c) for c in survey.channels], touchpoint=survey.touchpoint,
        default_language_code=survey.default_language_code, allow_anonymous=survey.allow_anonymous,
        status=survey_pb2.SurveyStatus.ValueType(survey.status), response_count=survey.response_count,
        creator=survey.creator, version=survey.version,
        questions=[survey_pb2.SurveyQuestion(
            question_id=q.question_id, type=survey_pb2.QuestionType.ValueType(q.type), text=q.text,
            required=q.required, options=[survey_pb2.QuestionOption(option_id=o.option_id, text=o.text)
                                          for o in q.options]) for q in survey.questions],
    )
    window = survey.response_window
    if window.start is not None or window.end is not None:
        set_timestamps(message.response_window, start_time=window.start, end_time=window.end)
    set_timestamps(message, create_time=survey.created_at, update_time=survey.updated_at)
    return message


def survey_filter_from(request: pb.ListSurveysRequest) -> SurveyFilter:
    return SurveyFilter(status=request.status, kind=request.kind, channel=request.channel,
                        touchpoint=request.touchpoint)


def _answer(message: survey_pb2.Answer) -> Answer:
    kind = message.WhichOneof("value") or ""
    return Answer(question_id=message.question_id, kind=kind, score=message.score,
                  option_ids=tuple(message.choice.option_ids), text=message.text)


def response_draft_from(message: survey_pb2.SurveyResponse) -> ResponseDraft:
    return ResponseDraft(customer=message.customer, channel=message.channel, subject=message.subject,
                         answers=tuple(_answer(a) for a in message.answers), language_code=message.language_code,
                         branch_id=message.branch_id, product=message.product)


def response_filter_from(request: pb.ListSurveyResponsesRequest) -> ResponseFilter:
    bad: list[FieldViolation] = []
    start, end = _window(request, "submit_interval", bad)
    if bad:
        raise InvalidArgument(bad)
    return ResponseFilter(
        customer=request.customer, channel=request.channel, submit_start=start, submit_end=end,
        min_score=request.min_score if request.HasField("min_score") else None,
        max_score=request.max_score if request.HasField("max_score") else None,
        nps_category=request.nps_category, sentiment=request.sentiment, subject=request.subject)


def response_to_proto(view: ResponseView) -> survey_pb2.SurveyResponse:
    r = view.response
    message = survey_pb2.SurveyResponse(
        name=r.name, response_id=r.response_id, customer=r.customer, channel=channel_pb2.Channel.ValueType(r.channel),
        subject=r.subject, language_code=r.language_code, branch_id=r.branch_id, score=r.score,
        kind=survey_pb2.SurveyKind.ValueType(r.kind), nps_category=survey_pb2.NpsCategory.ValueType(r.nps_category),
        masked_fields=list(view.masked_fields), survey_version=r.survey_version, product=r.product)
    for a in r.answers:
        answer = message.answers.add(question_id=a.question_id)
        if a.kind == "score":
            answer.score = a.score
        elif a.kind == "choice":
            answer.choice.option_ids.extend(a.option_ids)
        elif a.kind == "text":
            answer.text = a.text
    set_timestamps(message, submit_time=r.submitted_at)
    return message
