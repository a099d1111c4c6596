"""Surveys and their responses as the service's code sees them: plain values, answers in clear.

Enum values are the proto's numbers. Only `api/` turns these into protos and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum


class SurveyKind(IntEnum):
    NPS = 1
    CSAT = 2
    CES = 3


class SurveyStatus(IntEnum):
    DRAFT = 1
    ACTIVE = 2
    PAUSED = 3
    CLOSED = 4


class QuestionType(IntEnum):
    SCORE = 1
    SINGLE_CHOICE = 2
    MULTIPLE_CHOICE = 3
    FREE_TEXT = 4


class NpsCategory(IntEnum):
    DETRACTOR = 1
    PASSIVE = 2
    PROMOTER = 3


@dataclass(frozen=True)
class QuestionOption:
    option_id: str
    text: dict[str, str]


@dataclass(frozen=True)
class Question:
    question_id: str
    type: int
    text: dict[str, str]
    options: tuple[QuestionOption, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class Window:
    """When responses are accepted: start inclusive, end exclusive; None is open on that side."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Survey:
    survey_id: str
    display_name: str
    kind: int
    questions: tuple[Question, ...]
    channels: tuple[int, ...]
    default_language_code: str
    description: str = ""
    touchpoint: str = ""
    response_window: Window = field(default_factory=Window)
    allow_anonymous: bool = False
    status: int = 0
    response_count: int = 0
    creator: str = ""
    # Version of the questions (a new one each time they change); `etag` counts every change.
    version: int = 1
    revision: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"surveys/{self.survey_id}"

    @property
    def etag(self) -> str:
        return str(self.revision)


@dataclass(frozen=True)
class Answer:
    question_id: str
    # Exactly one of these, as the question's type says; `kind` names which was sent.
    kind: str  # "score", "choice", "text" or "" (none)
    score: int = 0
    option_ids: tuple[str, ...] = ()
    text: str = ""


@dataclass(frozen=True)
class ResponseDraft:
    """What `SubmitSurveyResponse` reads from the request, as sent."""

    customer: str
    channel: int
    answers: tuple[Answer, ...]
    subject: str = ""
    language_code: str = ""
    branch_id: str = ""
    product: str = ""


@dataclass(frozen=True)
class SurveyResponse:
    response_id: str
    survey_id: str
    survey_version: int
    customer_id: str
    channel: int
    subject: str
    answers: tuple[Answer, ...]
    kind: int
    score: int
    nps_category: int
    submitted_at: datetime
    language_code: str = ""
    branch_id: str = ""
    touchpoint: str = ""
    product: str = ""

    @property
    def name(self) -> str:
        return f"surveys/{self.survey_id}/responses/{self.response_id}"

    @property
    def customer(self) -> str:
        return f"customers/{self.customer_id}" if self.customer_id else ""


@dataclass(frozen=True)
class ResponseView:
    response: SurveyResponse
    masked_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class SurveyFilter:
    status: int = 0
    kind: int = 0
    channel: int = 0
    touchpoint: str = ""


@dataclass(frozen=True)
class ResponseFilter:
    customer: str = ""
    channel: int = 0
    submit_start: datetime | None = None
    submit_end: datetime | None = None
    min_score: int | None = None
    max_score: int | None = None
    nps_category: int = 0
    sentiment: int = 0
    subject: str = ""
