"""Care task use cases, in the caller's unit of work: each change locks the task, checks who may
touch it, its state and the etag, and writes its outbox event in the same transaction."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from google.protobuf.message import Message

from crm_campaign.book import rules as book_rules
from crm_campaign.book.repository import BookRepository
from crm_campaign.care import rules
from crm_campaign.care.model import CareTask, CareTaskFilter, CareTaskOutcome, CareTaskState, Completion
from crm_campaign.care.repository import CareTaskRepository
from crm_campaign.engagement.model import OfferResponse, ResponseType
from crm_campaign.engagement.service import Engagement
from crm_campaign.offers.repository import OfferRepository
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.errors import FieldViolation, InvalidArgument, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

log = get_logger("crm.campaign.care")

CARE_TASK_TYPE = "crm.campaign.v1.CareTask"
# An accepted or declined task that carries an offer records that response to the offer.
RESPONSE_OF = {CareTaskOutcome.ACCEPTED: ResponseType.ACCEPTED, CareTaskOutcome.DECLINED: ResponseType.DECLINED}

FeedPayload = Callable[[CareTask], Message]


class CareTasks:
    """The care task use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(
        self, *, repository: CareTaskRepository, book: BookRepository, offers: OfferRepository,
        engagement: Engagement, outbox: Outbox, idempotency: IdempotencyKeys, page_tokens: PageTokens,
        feed_payload: FeedPayload, clock: Clock = utc_now,
    ) -> None:
        self._repository = repository
        self._book = book
        self._offers = offers
        self._engagement = engagement
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._clock = clock

    async def create(self, *, uow: UnitOfWork, task: CareTask, request_id: uuid.UUID | None, request: Message,
                     actor: Principal) -> CareTask:
        now = self._clock()
        rules.validate_new(task, now=now, v=Violations()).raise_if_any()
        task = rules.normalise(dataclasses.replace(
            task, care_task_id=uuid.uuid4().hex, state=CareTaskState.OPEN, outcome=CareTaskOutcome.UNSPECIFIED,
            outcome_note="", contact_channel=0, source="", creator=actor.subject, closed_at=None))
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateCareTask",
            resource_name=task.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        rules.check_may_assign(actor, task.assignee)
        book_rules.check_in_book(actor, task.customer_id, await self._book.manager_of(uow, task.customer_id))
        if task.offer_id and await self._offers.get(uow, task.offer_campaign_id, task.offer_id) is None:
            raise InvalidArgument([FieldViolation("care_task.offer", "must name an existing offer")])
        created = await self._repository.insert(uow, task, now)
        await self._publish(uow, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("care_task_created", care_task_id=created.care_task_id, kind=created.kind)
        return created

    async def get(self, *, uow: UnitOfWork, care_task_id: str, actor: Principal) -> CareTask:
        found = await self._repository.get(uow, care_task_id)
        if found is None:
            raise not_found(care_task_id)
        rules.check_assigned(actor, found)
        return found

    async def list(self, *, uow: UnitOfWork, query: CareTaskFilter, page_size: int, page_token: str,
                   actor: Principal) -> Page[CareTask]:
        rules.validate_filter(query, Violations()).raise_if_any()
        limit = clamp_page_size(page_size)
        query = rules.scoped(actor, query)
        states = rules.listed_states(query)
        token_query = {"assignee": query.assignee, "customer": query.customer_id, "states": list(states),
                       "kind": query.kind, "due_before": _iso(query.due_before) if query.due_before else ""}
        after = self._page_tokens.decode(page_token, query=token_query)
        found = await self._repository.page(
            uow, query=query, states=states,
            after=(datetime.fromisoformat(after[0]), after[1]) if after is not None else None, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=lambda task: [_iso(task.due_at), task.care_task_id],
                                      query=token_query)

    async def update(self, *, uow: UnitOfWork, changes: CareTask, paths: Sequence[str], etag: str,
                     actor: Principal) -> CareTask:
        now = self._clock()
        v = Violations()
        rules.check_mask(paths, v)
        rules.validate_changes(changes, paths, now=now, v=v)
        v.raise_if_any()
        current = await self._locked(uow=uow, care_task_id=changes.care_task_id, etag=etag, actor=actor,
                                     check=rules.check_open)
        if "assignee" in paths:
            rules.check_may_assign(actor, changes.assignee)
        updated = await self._repository.update(uow, rules.apply(current, changes, paths, now=now), now)
        await self._publish(uow, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("care_task_updated", care_task_id=updated.care_task_id, fields=sorted(paths),
                 state=CareTaskState(updated.state).name)
        return updated

    async def delete(self, *, uow: UnitOfWork, care_task_id: str, etag: str, actor: Principal) -> None:
        current = await self._locked(uow=uow, care_task_id=care_task_id, etag=etag, actor=actor,
                                     check=rules.check_deletable)
        await self._repository.delete(uow, care_task_id)
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=CARE_TASK_TYPE)
        log.info("care_task_deleted", care_task_id=care_task_id)

    async def complete(self, *, uow: UnitOfWork, care_task_id: str, completion: Completion, etag: str,
                       request_id: uuid.UUID | None, request: Message, actor: Principal) -> CareTask:
        now = self._clock()
        rules.validate_completion(completion, Violations()).raise_if_any()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CompleteCareTask",
            resource_name=f"careTasks/{care_task_id}", replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        current = await self._locked(uow=uow, care_task_id=care_task_id, etag=etag, actor=actor,
                                     check=rules.check_open)
        done = await self._repository.update(uow, rules.complete(current, completion, now=now), now)
        response_type = RESPONSE_OF.get(CareTaskOutcome(done.outcome))
        if done.offer_id and response_type is not None:
            # A task is completed once, so its name keys the response: a retry records nothing new.
            await self._engagement.record_response(
                uow=uow, response=OfferResponse(
                    campaign_id=done.offer_campaign_id, response_id="", customer_id=done.customer_id,
                    offer_id=done.offer_id, channel=done.contact_channel, type=response_type, response_time=now),
                request_id=uuid.uuid5(uuid.NAMESPACE_URL, f"crm-campaign:{done.name}:response"), request=request,
                actor=actor)
        await self._publish(uow, done, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("care_task_completed", care_task_id=done.care_task_id, outcome=CareTaskOutcome(done.outcome).name)
        return done

    async def _locked(self, *, uow: UnitOfWork, care_task_id: str, etag: str, actor: Principal,
                      check: Callable[[CareTask], None]) -> CareTask:
        """The task locked for this unit of work; the caller's access, then `check`, then the etag."""
        def checks(task: CareTask) -> None:
            rules.check_assigned(actor, task)
            check(task)
        return await load_for_update(self._repository.get(uow, care_task_id, for_update=True), etag=etag,
                                     not_found=lambda: not_found(care_task_id), check=checks)

    async def _replay(self, *, uow: UnitOfWork, name: str) -> CareTask:
        care_task_id = name.removeprefix("careTasks/")
        found = await self._repository.get(uow, care_task_id)
        if found is None:
            raise NotFound("the care task this request acted on no longer exists", reason="CARE_TASK_NOT_FOUND",
                           metadata={"care_task": name})
        return found

    async def _publish(self, uow: UnitOfWork, task: CareTask, change_type: int, actor: Principal) -> None:
        await self._outbox.append(uow, resource_name=task.name, change_type=change_type,
                                  payload=self._feed_payload(task), actor=actor.subject)


class RaisedCareTasks:
    """Care tasks the service raises itself (a trigger rule's care-task action), in the caller's
    unit of work, with their feed events: no caller to check against a book and no request id
    (the caller's own record, e.g. a trigger firing under its unique key, makes each once)."""

    def __init__(self, *, repository: CareTaskRepository, outbox: Outbox, feed_payload: FeedPayload,
                 clock: Clock = utc_now) -> None:
        self._repository = repository
        self._outbox = outbox
        self._feed_payload = feed_payload
        self._clock = clock

    async def raise_task(self, *, uow: UnitOfWork, task: CareTask, creator: str) -> CareTask | None:
        """The task created OPEN, validated as a request would be; None, with nothing written,
        when it breaks a rule."""
        now = self._clock()
        if rules.validate_new(task, now=now, v=Violations()):
            return None
        task = rules.normalise(dataclasses.replace(
            task, care_task_id=uuid.uuid4().hex, state=CareTaskState.OPEN, outcome=CareTaskOutcome.UNSPECIFIED,
            outcome_note="", contact_channel=0, creator=creator, closed_at=None))
        created = await self._repository.insert(uow, task, now)
        await self._outbox.append(uow, resource_name=created.name, change_type=ChangeType.CHANGE_TYPE_CREATED,
                                  payload=self._feed_payload(created), actor=creator)
        log.info("care_task_raised", care_task_id=created.care_task_id, kind=created.kind, source=created.source)
        return created


def not_found(care_task_id: str) -> NotFound:
    return NotFound(f"care task {care_task_id} not found", reason="CARE_TASK_NOT_FOUND",
                    metadata={"care_task_id": care_task_id})


def _iso(moment: datetime | None) -> str:
    assert moment is not None
    return moment.isoformat()
