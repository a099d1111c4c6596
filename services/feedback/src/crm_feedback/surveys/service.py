"""Survey and response orchestration, in the caller's unit of work (crmkit.db's rule); each change
writes its change-feed event in the same transaction."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence

from google.protobuf.message import Message

from crm_feedback.complaints import rules as complaint_rules
from crm_feedback.surveys import rules
from crm_feedback.surveys.model import (
    ResponseDraft,
    ResponseFilter,
    ResponseView,
    Survey,
    SurveyFilter,
    SurveyResponse,
    SurveyStatus,
)
from crm_feedback.surveys.repository import SurveyRepository
from crm_feedback.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose, check_purpose
from crmkit.validation import Violations

log = get_logger("crm.feedback.surveys")

SURVEY_TYPE = "crm.feedback.v1.Survey"
RESPONSE_TYPE = "crm.feedback.v1.SurveyResponse"
PURPOSE_REQUIRED = "is required: say why the responses are read, e.g. ACCESS_PURPOSE_CUSTOMER_SERVICE"

SurveyPayload = Callable[[Survey], Message]
ResponsePayload = Callable[[ResponseView], Message]


class Surveys:
    """The survey use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(self, *, repository: SurveyRepository, outbox: Outbox, idempotency: IdempotencyKeys,
                 audit: AuditWriter, page_tokens: PageTokens, survey_payload: SurveyPayload,
                 response_payload: ResponsePayload, clock: Clock = utc_now) -> None:
        self._repository = repository
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        self._survey_payload = survey_payload
        self._response_payload = response_payload
        self._clock = clock

    async def create(self, *, uow: UnitOfWork, survey: Survey, request_id: uuid.UUID | None, request: Message,
                     actor: Principal) -> Survey:
        violations = Violations()
        rules.validate_new(survey, violations)
        violations.raise_if_any()
        now = self._clock()
        survey = dataclasses.replace(
            survey, survey_id=survey.survey_id or f"survey-{uuid.uuid4().hex[:16]}",
            status=survey.status or SurveyStatus.DRAFT, creator=actor.subject, version=1, created_at=now,
            updated_at=now)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateSurvey",
            resource_name=survey.name, replay=lambda name: self.get(uow=uow, name=name))
        if replayed is not None:
            return replayed
        created = await self._repository.insert(uow, survey)
        if created is None:
            raise AlreadyExists(f"a survey with id {survey.survey_id} exists", reason="SURVEY_EXISTS",
                                metadata={"survey_id": survey.survey_id})
        await self._publish(uow, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("survey_created", survey_id=created.survey_id)
        return created

    async def get(self, *, uow: UnitOfWork, name: str) -> Survey:
        survey_id = rules.SURVEY_NAME.parse_one(name, required=True)
        found = await self._repository.get(uow, survey_id)
        if found is None:
            raise _not_found(survey_id)
        return found

    async def list(self, *, uow: UnitOfWork, query: SurveyFilter, page_size: int, page_token: str) -> Page[Survey]:
        violations = Violations()
        rules.validate_survey_filter(query, page_size=page_size, v=violations)
        violations.raise_if_any()
        limit = clamp_page_size(page_size)
        token_query = dataclasses.asdict(query)
        after = self._page_tokens.decode(page_token, query=token_query)
        found = await self._repository.page(uow, query=query, after=after, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, query=token_query,
                                      key=lambda s: [s.created_at.isoformat() if s.created_at else "", s.survey_id])

    async def update(self, *, uow: UnitOfWork, name: str, changes: Survey, paths: Sequence[str], etag: str,
                     actor: Principal) -> Survey:
        violations = Violations()
        survey_id = rules.SURVEY_NAME.parse_one(name, "survey.name", required=True)
        rules.validate_mask(paths, violations)
        if "status" in paths:
            rules.validate_status_value(changes.status, violations)
        violations.raise_if_any()
        current = await load_for_update(self._repository.get(uow, survey_id, for_update=True), etag=etag,
                                        not_found=lambda: _not_found(survey_id))
        merged = rules.apply(current, changes, paths, now=self._clock())
        rules.validate_values(merged, violations)
        violations.raise_if_any()
        updated = await self._repository.update(uow, merged, new_version=merged.version != current.version)
        await self._publish(uow, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("survey_updated", survey_id=survey_id, fields=sorted(paths), version=updated.version)
        return updated

    async def delete(self, *, uow: UnitOfWork, name: str, etag: str, actor: Principal) -> None:
        survey_id = rules.SURVEY_NAME.parse_one(name, required=True)
        current = await load_for_update(self._repository.get(uow, survey_id, for_update=True), etag=etag,
                                        not_found=lambda: _not_found(survey_id), check=rules.check_deletable)
        await self._repository.delete(uow, survey_id)
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=SURVEY_TYPE)
        log.info("survey_deleted", survey_id=survey_id)

    async def submit(self, *, uow: UnitOfWork, parent: str, draft: ResponseDraft, request_id: str,
                     request: Message, actor: Principal) -> ResponseView:
        """One customer's answers: checked against the survey's current version, stored once per
        customer, survey and subject, and put on the feed (the detractor signal)."""
        violations = Violations()
        survey_id = rules.SURVEY_NAME.parse_one(parent, "parent", required=True)
        key = complaint_rules.request_key(request_id, violations)
        violations.raise_if_any()
        response_id = str(uuid.uuid4())
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=key, request=request, method="SubmitSurveyResponse",
            resource_name=f"surveys/{survey_id}/responses/{response_id}",
            replay=lambda name: self._replay_response(uow=uow, name=name, actor=actor))
        if replayed is not None:
            return replayed
        survey = await self._repository.get(uow, survey_id, for_update=True)
        if survey is None:
            raise _not_found(survey_id)
        now = self._clock()
        score = rules.validate_response(draft, survey, violations)
        violations.raise_if_any()
        rules.check_accepting(survey, now=now)
        response = rules.new_response(draft, survey, response_id=response_id, score=score, now=now)
        if not await self._repository.insert_response(uow, response):
            raise AlreadyExists("the customer already answered this survey about this subject",
                                reason="SURVEY_ALREADY_ANSWERED",
                                metadata={"survey": survey.name, "subject": response.subject})
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="survey_response.submit", resource_name=response.name,
            purpose="SERVICE", fields=("answers.text",) if any(a.text for a in response.answers) else ())])
        await self._outbox.append(uow, resource_name=response.name, change_type=ChangeType.CHANGE_TYPE_CREATED,
                                  payload=self._response_payload(rules.view_for(rules.FEED_READER, response)),
                                  actor=actor.subject, resource_type=RESPONSE_TYPE)
        if rules.is_detractor(response):
            log.info("survey_detractor", survey_id=survey_id, score=response.score)
        return rules.view_for(actor, response)

    async def list_responses(self, *, uow: UnitOfWork, parent: str, query: ResponseFilter, page_size: int,
                             page_token: str, purpose: Purpose, actor: Principal) -> Page[ResponseView]:
        violations = Violations()
        survey_id: str | None = None
        if parent != f"surveys/{rules.ANY_SURVEY}":
            survey_id = rules.SURVEY_NAME.parse_one(parent, "parent", required=True)
        rules.validate_response_filter(query, page_size=page_size, v=violations)
        check_purpose(purpose, violations, required=PURPOSE_REQUIRED)
        violations.raise_if_any()
        if survey_id is not None and await self._repository.get(uow, survey_id) is None:
            raise _not_found(survey_id)
        limit = clamp_page_size(page_size)
        handler = complaint_rules.case_handler(actor)
        token_query = {"parent": parent, "handler": handler, "filter": {
            k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in dataclasses.asdict(query).items()}}
        after = self._page_tokens.decode(page_token, query=token_query)
        found = await self._repository.responses(
            uow, survey_id=survey_id, query=query, customer_id=complaint_rules.customer_id_of(query.customer) or "",
            handler=handler, after=after, limit=limit + 1)
        page = self._page_tokens.page(found, limit=limit, query=token_query,
                                      key=lambda r: [r.submitted_at.isoformat(), r.response_id])
        await self._audit.record(*(AuditEntry(principal=actor.subject, action="survey_response.list",
                                              resource_name=r.name, purpose=purpose.purpose,
                                              justification=purpose.justification)
                                   for r in page.items if r.customer_id))
        return Page([rules.view_for(actor, r) for r in page.items], page.next_page_token)

    async def _replay_response(self, *, uow: UnitOfWork, name: str, actor: Principal) -> ResponseView:
        found = await self._repository.get_response(uow, name.rsplit("/", 1)[1])
        if found is None:
            raise NotFound("the response stored by this request no longer exists", reason="SURVEY_RESPONSE_NOT_FOUND")
        return rules.view_for(actor, found)

    async def _publish(self, uow: UnitOfWork, survey: Survey, change_type: int, actor: Principal) -> None:
        await self._outbox.append(uow, resource_name=survey.name, change_type=change_type,
                                  payload=self._survey_payload(survey), actor=actor.subject)


def _not_found(survey_id: str) -> NotFound:
    return NotFound(f"survey {survey_id} not found", reason="SURVEY_NOT_FOUND", metadata={"survey_id": survey_id})


__all__ = ["SurveyResponse", "Surveys"]
