"""Pure decisions about surveys and responses: what a valid survey, update and response are, the
survey's life, the scales, NPS categories, masking. No I/O here."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from crm_feedback.complaints import rules as complaint_rules
from crm_feedback.surveys.model import (
    Answer,
    NpsCategory,
    Question,
    QuestionType,
    ResponseDraft,
    ResponseFilter,
    ResponseView,
    Survey,
    SurveyFilter,
    SurveyKind,
    SurveyResponse,
    SurveyStatus,
)
from crmkit import masking
from crmkit.auth import Principal, Role
from crmkit.errors import FailedPrecondition
from crmkit.resources import ResourceName
from crmkit.validation import Violations

SURVEY_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
SURVEY_NAME = ResourceName("surveys/{survey_id}", id_pattern=SURVEY_ID.pattern)
# `surveys/-` lists the responses to every survey.
ANY_SURVEY = "-"
QUESTION_ID = re.compile(r"[a-z0-9_]{1,32}")
TOUCHPOINT = re.compile(r"[a-z0-9_]{1,64}")
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
RESOURCE_NAME = re.compile(r"[a-z][A-Za-z0-9]*/\S+")

SCALES: Mapping[int, range] = {SurveyKind.NPS: range(0, 11), SurveyKind.CSAT: range(1, 6), SurveyKind.CES: range(1, 8)}
MAX_QUESTIONS, MAX_OPTIONS, MIN_OPTIONS = 20, 20, 2
MAX_DISPLAY_NAME, MAX_DESCRIPTION, MAX_QUESTION_TEXT, MAX_OPTION_TEXT = 200, 2000, 500, 200
MAX_ANSWER_TEXT, MAX_SUBJECT = 2000, 200
UPDATABLE = frozenset({"display_name", "description", "questions", "channels", "touchpoint", "default_language_code",
                       "response_window", "allow_anonymous", "status"})
# The survey's life: the statuses each status may become.
LIFE: Mapping[SurveyStatus, frozenset[SurveyStatus]] = {
    SurveyStatus.DRAFT: frozenset({SurveyStatus.ACTIVE}),
    SurveyStatus.ACTIVE: frozenset({SurveyStatus.PAUSED, SurveyStatus.CLOSED}),
    SurveyStatus.PAUSED: frozenset({SurveyStatus.ACTIVE, SurveyStatus.CLOSED}),
    SurveyStatus.CLOSED: frozenset(),
}
# Roles that read free-text answers in clear (as for complaint descriptions).
CLEAR_READERS = complaint_rules.CLEAR_READERS
CHOICE_TYPES = (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE)


def scale_text(kind: int) -> str:
    scale = SCALES[kind]
    return f"{scale.start} to {scale.stop - 1} for a {SurveyKind(kind).name} survey"


def nps_category(kind: int, score: int) -> int:
    if kind != SurveyKind.NPS:
        return 0
    if score <= 6:
        return NpsCategory.DETRACTOR
    return NpsCategory.PASSIVE if score <= 8 else NpsCategory.PROMOTER


def is_detractor(response: SurveyResponse) -> bool:
    return response.nps_category == NpsCategory.DETRACTOR


# --- surveys -------------------------------------------------------------------------------


def validate_new(survey: Survey, v: Violations) -> None:
    field = "survey"
    if survey.survey_id:
        v.pattern(survey.survey_id, f"{field}.survey_id", SURVEY_ID,
                  "must be 1 to 63 characters from a-z 0-9 -, starting with a letter")
    v.enum(survey.kind, f"{field}.kind", frozenset(SurveyKind), "SurveyKind",
           required="is required: SURVEY_KIND_NPS, SURVEY_KIND_CSAT or SURVEY_KIND_CES")
    v.check(survey.status in (0, SurveyStatus.DRAFT, SurveyStatus.ACTIVE), f"{field}.status",
            "must be SURVEY_STATUS_DRAFT or SURVEY_STATUS_ACTIVE on create")
    validate_values(survey, v)


def validate_values(survey: Survey, v: Violations) -> None:
    """The rules of the updatable fields, on the survey as it would be stored."""
    f = "survey"
    if v.required(survey.display_name.strip(), f"{f}.display_name"):
        v.max_length(survey.display_name, f"{f}.display_name", MAX_DISPLAY_NAME)
        v.text(survey.display_name, f"{f}.display_name")
    v.max_length(survey.description, f"{f}.description", MAX_DESCRIPTION)
    v.text(survey.description, f"{f}.description", multiline=True)
    if survey.touchpoint:
        v.pattern(survey.touchpoint, f"{f}.touchpoint", TOUCHPOINT, "must be a short code of 1 to 64 characters "
                  "from a-z 0-9 _, e.g. account_opening")
    language_ok = v.check(bool(LANGUAGE.fullmatch(survey.default_language_code)), f"{f}.default_language_code",
                          "is required: a BCP-47 language tag such as zh-CN or en")
    if v.check(bool(survey.channels), f"{f}.channels", "must list at least one Channel"):
        v.check(len(set(survey.channels)) == len(survey.channels), f"{f}.channels", "must not repeat a channel")
        for i, channel in enumerate(survey.channels):
            v.enum(channel, f"{f}.channels[{i}]", complaint_rules.CHANNELS, "Channel",
                   required="must not be CHANNEL_UNSPECIFIED")
    window = survey.response_window
    if window.start is not None and window.end is not None:
        v.check(window.start < window.end, f"{f}.response_window", "end_time must be after start_time")
    _validate_questions(survey.questions, survey.default_language_code if language_ok else "", v)


def _validate_questions(questions: Sequence[Question], language: str, v: Violations) -> None:
    f = "survey.questions"
    if not v.check(1 <= len(questions) <= MAX_QUESTIONS, f, f"must have 1 to {MAX_QUESTIONS} questions"):
        return
    scores = sum(1 for q in questions if q.type == QuestionType.SCORE)
    v.check(scores == 1, f, f"must have exactly one question of type QUESTION_TYPE_SCORE, not {scores}")
    seen: set[str] = set()
    for i, q in enumerate(questions):
        here = f"{f}[{i}]"
        if v.pattern(q.question_id, f"{here}.question_id", QUESTION_ID, "must be 1 to 32 characters from a-z 0-9 _"):
            v.check(q.question_id not in seen, f"{here}.question_id", "must be unique within the survey")
            seen.add(q.question_id)
        v.enum(q.type, f"{here}.type", frozenset(QuestionType), "QuestionType", required=True)
        _validate_texts(q.text, f"{here}.text", language, MAX_QUESTION_TEXT, v)
        if q.type in CHOICE_TYPES:
            if v.check(MIN_OPTIONS <= len(q.options) <= MAX_OPTIONS, f"{here}.options",
                       f"a choice question must have {MIN_OPTIONS} to {MAX_OPTIONS} options"):
                ids = [o.option_id for o in q.options]
                v.check(len(set(ids)) == len(ids), f"{here}.options", "option_id must be unique within the question")
                for j, option in enumerate(q.options):
                    v.pattern(option.option_id, f"{here}.options[{j}].option_id", QUESTION_ID,
                              "must be 1 to 32 characters from a-z 0-9 _")
                    _validate_texts(option.text, f"{here}.options[{j}].text", language, MAX_OPTION_TEXT, v)
        else:
            v.check(not q.options, f"{here}.options", "must be empty unless the question is a choice question")


def _validate_texts(texts: Mapping[str, str], field: str, language: str, limit: int, v: Violations) -> None:
    if language:
        v.check(language in texts, field, f"must have text in the survey's default_language_code ({language})")
    for tag, text in texts.items():
        v.check(bool(LANGUAGE.fullmatch(tag)), field, f"{tag!r} is not a BCP-47 language tag")
        if v.check(1 <= len(text.strip()) <= limit, field, f"each text must be 1 to {limit} characters"):
            v.text(text, field)


def validate_mask(paths: Sequence[str], v: Violations) -> None:
    v.update_mask(paths, UPDATABLE)


def apply(current: Survey, changes: Survey, paths: Sequence[str], *, now: datetime) -> Survey:
    """`current` with the masked fields from `changes`; a life check for `status`; new questions
    make a new version; nothing changes on a closed survey."""
    if current.status == SurveyStatus.CLOSED:
        raise FailedPrecondition("a closed survey cannot change", reason="SURVEY_CLOSED")
    values = {path: getattr(changes, path) for path in paths}
    if "status" in values and values["status"] != current.status:
        allowed = LIFE[SurveyStatus(current.status)]
        if values["status"] not in allowed:
            wanted = SurveyStatus(values["status"]).name if values["status"] in frozenset(SurveyStatus) else "?"
            raise FailedPrecondition(
                f"a {SurveyStatus(current.status).name} survey cannot become {wanted}",
                reason="INVALID_SURVEY_TRANSITION",
                metadata={"from_status": f"SURVEY_STATUS_{SurveyStatus(current.status).name}",
                          "to_status": f"SURVEY_STATUS_{wanted}"})
    merged = dataclasses.replace(current, **values, updated_at=now)
    if "questions" in values and tuple(values["questions"]) != current.questions:
        merged = dataclasses.replace(merged, version=current.version + 1)
    return merged


def validate_status_value(status: int, v: Violations) -> None:
    v.enum(status, "survey.status", frozenset(SurveyStatus), "SurveyStatus",
           required="must not be unspecified when updated")


def check_deletable(survey: Survey) -> None:
    if survey.response_count:
        raise FailedPrecondition(f"the survey has {survey.response_count} responses; close it instead",
                                 reason="SURVEY_HAS_RESPONSES")


def validate_survey_filter(query: SurveyFilter, *, page_size: int, v: Violations) -> None:
    v.check(page_size >= 0, "page_size", "must not be negative")
    v.enum(query.status, "status", frozenset(SurveyStatus), "SurveyStatus")
    v.enum(query.kind, "kind", frozenset(SurveyKind), "SurveyKind")
    v.enum(query.channel, "channel", complaint_rules.CHANNELS, "Channel")
    if query.touchpoint:
        v.pattern(query.touchpoint, "touchpoint", TOUCHPOINT, "must be a short code from a-z 0-9 _")


# --- responses -----------------------------------------------------------------------------


def check_accepting(survey: Survey, *, now: datetime) -> None:
    if survey.status != SurveyStatus.ACTIVE:
        status = SurveyStatus(survey.status).name
        reason = "SURVEY_CLOSED" if survey.status == SurveyStatus.CLOSED else "SURVEY_NOT_ACTIVE"
        raise FailedPrecondition(f"the survey is {status} and accepts no responses", reason=reason,
                                 metadata={"status": f"SURVEY_STATUS_{status}"})
    window = survey.response_window
    if (window.start is not None and now < window.start) or (window.end is not None and now >= window.end):
        raise FailedPrecondition("the survey is outside its response window", reason="OUTSIDE_RESPONSE_WINDOW")


def validate_response(draft: ResponseDraft, survey: Survey, v: Violations) -> int:
    """Every rule the response breaks against this survey; the score of its score question."""
    f = "response"
    if draft.customer:
        complaint_rules.CUSTOMER_NAME.check(draft.customer, f"{f}.customer", v)
    else:
        v.check(survey.allow_anonymous, f"{f}.customer", "is required: the survey does not accept anonymous responses")
    if v.enum(draft.channel, f"{f}.channel", complaint_rules.CHANNELS, "Channel", required=True):
        v.check(draft.channel in survey.channels, f"{f}.channel", "must be one of the survey's channels")
    if draft.subject and v.max_length(draft.subject, f"{f}.subject", MAX_SUBJECT):
        v.pattern(draft.subject, f"{f}.subject", RESOURCE_NAME,
                      "must be a resource name like complaints/{complaint_id}")
    if draft.language_code:
        v.check(bool(LANGUAGE.fullmatch(draft.language_code)), f"{f}.language_code", "must be a BCP-47 language tag")
    v.max_length(draft.branch_id, f"{f}.branch_id", complaint_rules.MAX_BRANCH_ID)
    v.text(draft.branch_id, f"{f}.branch_id")
    complaint_rules.validate_product(draft.product, f"{f}.product", v)
    return _validate_answers(draft.answers, survey, v)


def _validate_answers(answers: Sequence[Answer], survey: Survey, v: Violations) -> int:
    questions = {q.question_id: q for q in survey.questions}
    score = -1
    answered: set[str] = set()
    for i, answer in enumerate(answers):
        here = f"response.answers[{i}]"
        question = questions.get(answer.question_id)
        if not v.check(question is not None, f"{here}.question_id",
                       f"{answer.question_id!r} is not a question of this survey (version {survey.version})"):
            continue
        assert question is not None
        if not v.check(answer.question_id not in answered, f"{here}.question_id", "answers a question twice"):
            continue
        answered.add(answer.question_id)
        if question.type == QuestionType.SCORE:
            if (v.check(answer.kind == "score", f"{here}.score", "is required: the score question takes a score")
                    and v.check(answer.score in SCALES[survey.kind], f"{here}.score",
                                f"must be {scale_text(survey.kind)}")):
                score = answer.score
        elif question.type in CHOICE_TYPES:
            _validate_choice(answer, question, f"{here}.choice", v)
        elif v.check(answer.kind == "text", f"{here}.text", "is required: a free-text question takes text"):
            text = answer.text.strip()
            if v.check(1 <= len(text) <= MAX_ANSWER_TEXT, f"{here}.text",
                       f"must be 1 to {MAX_ANSWER_TEXT} characters after trimming"):
                v.text(text, f"{here}.text", multiline=True)
    for q in survey.questions:
        if (q.required or q.type == QuestionType.SCORE) and q.question_id not in answered:
            v.add("response.answers", f"must answer the required question {q.question_id!r}")
    return score


def _validate_choice(answer: Answer, question: Question, field: str, v: Violations) -> None:
    if not v.check(answer.kind == "choice", field, "is required: a choice question takes option_ids"):
        return
    known = {o.option_id for o in question.options}
    picked = answer.option_ids
    v.check(len(set(picked)) == len(picked), f"{field}.option_ids", "must not repeat an option")
    unknown = [o for o in picked if o not in known]
    v.check(not unknown, f"{field}.option_ids", f"{', '.join(map(repr, unknown))} not an option of the question")
    if question.type == QuestionType.SINGLE_CHOICE:
        v.check(len(picked) == 1, f"{field}.option_ids", "must pick exactly one option")
    else:
        v.check(len(picked) >= 1, f"{field}.option_ids", "must pick at least one option")


def new_response(draft: ResponseDraft, survey: Survey, *, response_id: str, score: int, now: datetime
                 ) -> SurveyResponse:
    answers = tuple(dataclasses.replace(a, text=a.text.strip()) for a in draft.answers)
    return SurveyResponse(
        response_id=response_id, survey_id=survey.survey_id, survey_version=survey.version,
        customer_id=complaint_rules.customer_id_of(draft.customer) or "", channel=draft.channel,
        subject=draft.subject, answers=answers, kind=survey.kind, score=score,
        nps_category=nps_category(survey.kind, score), submitted_at=now, language_code=draft.language_code,
        branch_id=draft.branch_id, touchpoint=survey.touchpoint, product=draft.product)


def validate_response_filter(query: ResponseFilter, *, page_size: int, v: Violations) -> None:
    v.check(page_size >= 0, "page_size", "must not be negative")
    if query.customer:
        complaint_rules.CUSTOMER_NAME.check(query.customer, "customer", v)
    v.enum(query.channel, "channel", complaint_rules.CHANNELS, "Channel")
    if query.submit_start is not None and query.submit_end is not None:
        v.check(query.submit_start <= query.submit_end, "submit_interval", "end_time must not be before start_time")
    if query.min_score is not None and query.max_score is not None:
        v.check(query.min_score <= query.max_score, "max_score", "must not be below min_score")
    v.enum(query.nps_category, "nps_category", frozenset(NpsCategory), "NpsCategory")
    v.enum(query.sentiment, "sentiment", range(0, 4), "Sentiment")
    v.max_length(query.subject, "subject", MAX_SUBJECT)


def view_for(principal: Principal, response: SurveyResponse) -> ResponseView:
    """Free-text answers masked for roles that may not read them."""
    if principal.has_any(CLEAR_READERS) or not any(a.text for a in response.answers):
        return ResponseView(response)
    masked = tuple(dataclasses.replace(a, text=masking.mask_text(a.text)) if a.text else a for a in response.answers)
    return ResponseView(dataclasses.replace(response, answers=masked), ("answers.text",))


FEED_READER = Principal(subject="system:feed", roles=frozenset({Role.SERVICE}))
