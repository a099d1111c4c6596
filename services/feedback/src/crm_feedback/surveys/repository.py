"""All SQL about surveys and responses. Never commits: the caller's unit of work does."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_feedback.complaints.repository import in_book
from crm_feedback.complaints.tables import complaint
from crm_feedback.surveys.model import (
    Answer,
    Question,
    QuestionOption,
    ResponseFilter,
    Survey,
    SurveyFilter,
    SurveyResponse,
    Window,
)
from crm_feedback.surveys.tables import survey as s
from crm_feedback.surveys.tables import survey_response as r
from crm_feedback.surveys.tables import survey_version as sv
from crmkit.crypto import KeyRing
from crmkit.db import UnitOfWork


def questions_json(questions: Sequence[Question]) -> list[dict[str, Any]]:
    return [{"question_id": q.question_id, "type": q.type, "text": dict(q.text), "required": q.required,
             "options": [{"option_id": o.option_id, "text": dict(o.text)} for o in q.options]} for q in questions]


def questions_from(stored: list[dict[str, Any]]) -> tuple[Question, ...]:
    return tuple(Question(question_id=q["question_id"], type=q["type"], text=q["text"], required=q["required"],
                          options=tuple(QuestionOption(o["option_id"], o["text"]) for o in q["options"]))
                 for q in stored)


def _survey_row(survey: Survey) -> dict[str, Any]:
    return {"display_name": survey.display_name, "description": survey.description, "kind": survey.kind,
            "channels": list(survey.channels), "touchpoint": survey.touchpoint,
            "default_language_code": survey.default_language_code, "window_start": survey.response_window.start,
            "window_end": survey.response_window.end, "allow_anonymous": survey.allow_anonymous,
            "status": survey.status, "version": survey.version}


def _survey_from(row: Any, questions: tuple[Question, ...]) -> Survey:
    return Survey(survey_id=row.survey_id, display_name=row.display_name, description=row.description,
                  kind=row.kind, questions=questions, channels=tuple(row.channels), touchpoint=row.touchpoint,
                  default_language_code=row.default_language_code,
                  response_window=Window(row.window_start, row.window_end), allow_anonymous=row.allow_anonymous,
                  status=row.status, response_count=row.response_count, creator=row.creator, version=row.version,
                  revision=row.revision, created_at=row.created_at, updated_at=row.updated_at)


def _answers_json(answers: Sequence[Answer]) -> str:
    return json.dumps([{"question_id": a.question_id, "kind": a.kind, "score": a.score,
                        "option_ids": list(a.option_ids), "text": a.text} for a in answers], ensure_ascii=False)


def _answers_from(text: str) -> tuple[Answer, ...]:
    return tuple(Answer(question_id=a["question_id"], kind=a["kind"], score=a["score"],
                        option_ids=tuple(a["option_ids"]), text=a["text"]) for a in json.loads(text))


class SurveyRepository:
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    async def insert(self, uow: UnitOfWork, survey: Survey) -> Survey | None:
        """Insert with its first question version; None when the id is taken."""
        row = (await uow.execute(pg.insert(s).values(survey_id=survey.survey_id, creator=survey.creator,
                                                     **_survey_row(survey))
                                 .on_conflict_do_nothing().returning(s))).first()
        if row is None:
            return None
        await uow.execute(sa.insert(sv).values(survey_id=survey.survey_id, version=survey.version,
                                               questions=questions_json(survey.questions)))
        return _survey_from(row, survey.questions)

    async def get(self, uow: UnitOfWork, survey_id: str, *, for_update: bool = False) -> Survey | None:
        query = sa.select(s).where(s.c.survey_id == survey_id)
        if for_update:
            query = query.with_for_update()
        row = (await uow.execute(query)).first()
        if row is None:
            return None
        return _survey_from(row, await self.questions(uow, survey_id, row.version))

    async def questions(self, uow: UnitOfWork, survey_id: str, version: int) -> tuple[Question, ...]:
        stored = await uow.scalar(sa.select(sv.c.questions).where(sv.c.survey_id == survey_id,
                                                                  sv.c.version == version))
        return questions_from(stored or [])

    async def update(self, uow: UnitOfWork, survey: Survey, *, new_version: bool) -> Survey:
        row = (await uow.execute(sa.update(s).where(s.c.survey_id == survey.survey_id)
                                 .values(**_survey_row(survey), revision=s.c.revision + 1, updated_at=sa.func.now())
                                 .returning(s))).one()
        if new_version:
            await uow.execute(sa.insert(sv).values(survey_id=survey.survey_id, version=survey.version,
                                                   questions=questions_json(survey.questions)))
        return _survey_from(row, survey.questions)

    async def delete(self, uow: UnitOfWork, survey_id: str) -> None:
        await uow.execute(sa.delete(s).where(s.c.survey_id == survey_id))

    async def page(self, uow: UnitOfWork, *, query: SurveyFilter, after: list[Any] | None, limit: int) -> list[Survey]:
        statement = sa.select(s).order_by(s.c.created_at.desc(), s.c.survey_id.desc()).limit(limit)
        if query.status:
            statement = statement.where(s.c.status == query.status)
        if query.kind:
            statement = statement.where(s.c.kind == query.kind)
        if query.channel:
            statement = statement.where(s.c.channels.any(query.channel))
        if query.touchpoint:
            statement = statement.where(s.c.touchpoint == query.touchpoint)
        if after is not None:
            statement = statement.where(sa.tuple_(s.c.created_at, s.c.survey_id)
                                        < (datetime.fromisoformat(after[0]), after[1]))
        rows = (await uow.execute(statement)).all()
        versions = {(row.survey_id, row.version) for row in rows}
        stored = {}
        if versions:
            found = await uow.execute(sa.select(sv).where(sa.tuple_(sv.c.survey_id, sv.c.version).in_(versions)))
            stored = {(v.survey_id, v.version): questions_from(v.questions) for v in found}
        return [_survey_from(row, stored.get((row.survey_id, row.version), ())) for row in rows]

    # --- responses -----------------------------------------------------------------------

    def _seal(self, response: SurveyResponse) -> bytes:
        return self._keys.seal(_answers_json(response.answers), context=f"survey_response:{response.response_id}")

    def _response_from(self, row: Any) -> SurveyResponse:
        answers = _answers_from(self._keys.open(row.answers_sealed, context=f"survey_response:{row.response_id}"))
        return SurveyResponse(
            response_id=row.response_id, survey_id=row.survey_id, survey_version=row.survey_version,
            customer_id=row.customer_id, channel=row.channel, subject=row.subject, answers=answers, kind=row.kind,
            score=row.score, nps_category=row.nps_category, submitted_at=row.submitted_at,
            language_code=row.language_code, branch_id=row.branch_id, touchpoint=row.touchpoint,
            product=row.product)

    async def insert_response(self, uow: UnitOfWork, response: SurveyResponse) -> bool:
        """False when the customer already answered the survey about the same subject."""
        statement = pg.insert(r).values(
            response_id=response.response_id, survey_id=response.survey_id, survey_version=response.survey_version,
            customer_id=response.customer_id, channel=response.channel, subject=response.subject,
            answers_sealed=self._seal(response), key_id=self._keys.active_key_id, kind=response.kind,
            score=response.score, nps_category=response.nps_category, language_code=response.language_code,
            branch_id=response.branch_id, touchpoint=response.touchpoint, submitted_at=response.submitted_at,
            product=response.product,
        ).on_conflict_do_nothing().returning(r.c.response_id)
        if (await uow.execute(statement)).first() is None:
            return False
        await uow.execute(sa.update(s).where(s.c.survey_id == response.survey_id)
                          .values(response_count=s.c.response_count + 1))
        return True

    async def get_response(self, uow: UnitOfWork, response_id: str) -> SurveyResponse | None:
        row = (await uow.execute(sa.select(r).where(r.c.response_id == response_id))).first()
        return self._response_from(row) if row is not None else None

    async def responses(self, uow: UnitOfWork, *, survey_id: str | None, query: ResponseFilter, customer_id: str,
                        handler: str | None, after: list[Any] | None, limit: int) -> list[SurveyResponse]:
        """Newest first; `handler` limits them to responses about complaints in that employee's book."""
        statement = sa.select(r).order_by(r.c.submitted_at.desc(), r.c.response_id.desc()).limit(limit)
        conditions: list[sa.ColumnElement[bool]] = []
        if survey_id is not None:
            conditions.append(r.c.survey_id == survey_id)
        if customer_id:
            conditions.append(r.c.customer_id == customer_id)
        if query.channel:
            conditions.append(r.c.channel == query.channel)
        if query.submit_start is not None:
            conditions.append(r.c.submitted_at >= query.submit_start)
        if query.submit_end is not None:
            conditions.append(r.c.submitted_at < query.submit_end)
        if query.min_score is not None:
            conditions.append(r.c.score >= query.min_score)
        if query.max_score is not None:
            conditions.append(r.c.score <= query.max_score)
        if query.nps_category:
            conditions.append(r.c.nps_category == query.nps_category)
        if query.sentiment:
            conditions.append(r.c.sentiment == query.sentiment)
        if query.subject:
            conditions.append(r.c.subject == query.subject)
        if handler is not None:
            about_book = sa.select(complaint.c.complaint_id).where(
                in_book(complaint, handler),
                r.c.subject == sa.func.concat("complaints/", complaint.c.complaint_id))
            conditions.append(sa.exists(about_book))
        if after is not None:
            conditions.append(sa.tuple_(r.c.submitted_at, r.c.response_id)
                              < (datetime.fromisoformat(after[0]), after[1]))
        rows = (await uow.execute(statement.where(*conditions))).all()
        return [self._response_from(row) for row in rows]
