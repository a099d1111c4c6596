"""Campaign orchestration: one unit of work per call; every change, lifecycle steps included,
writes its outbox event in the same transaction."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_campaign.campaigns import rules
from crm_campaign.campaigns.model import Action, Campaign, CampaignState, Interval
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.offers.repository import OfferRepository
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import Database
from crmkit.errors import Aborted, AlreadyExists, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import PageTokens, clamp_page_size

log = get_logger("crm.campaign")

CAMPAIGN_TYPE = "crm.campaign.v1.Campaign"

# Turns a stored campaign into the change-feed payload; supplied by the API layer so this
# module stays free of generated messages.
FeedPayload = Callable[[Campaign], Message]


@dataclasses.dataclass(frozen=True)
class CampaignPage:
    campaigns: Sequence[Campaign]
    next_page_token: str


class Campaigns:
    """The campaign use cases. Methods are keyword-only and take the calling principal."""

    def __init__(
        self, *, db: Database, repository: CampaignRepository, offers: OfferRepository, outbox: Outbox,
        idempotency: IdempotencyKeys, page_tokens: PageTokens, feed_payload: FeedPayload, reporting_currency: str,
        clock: Clock = utc_now,
    ) -> None:
        self._db = db
        self._repository = repository
        self._offers = offers
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._currency = reporting_currency
        self._clock = clock

    async def create(self, *, campaign: Campaign, request_id: uuid.UUID | None, actor: Principal) -> Campaign:
        campaign = rules.normalise(campaign)
        if not campaign.campaign_id:
            campaign = dataclasses.replace(campaign, campaign_id=f"campaign-{uuid.uuid4().hex[:16]}")
        rules.validate(campaign, reporting_currency=self._currency).raise_if_any()
        campaign = dataclasses.replace(campaign, state=CampaignState.DRAFT, creator=actor.subject)
        async with self._db.unit_of_work() as session:
            earlier = await self._idempotency.claim(
                session, principal=actor.subject, request_id=request_id, method="CreateCampaign",
                resource_name=campaign.name)
            if earlier is not None:
                return await self._replay(session, earlier)
            created = await self._repository.insert(session, campaign)
            if created is None:
                raise AlreadyExists(f"campaign {campaign.campaign_id} already exists", reason="CAMPAIGN_EXISTS",
                                    metadata={"campaign_id": campaign.campaign_id})
            await self._publish(session, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("campaign_created", campaign_id=created.campaign_id, campaign_type=created.type)
        return created

    async def get(self, *, campaign_id: str) -> Campaign:
        async with self._db.unit_of_work(read_only=True) as session:
            found = await self._repository.get(session, campaign_id)
        if found is None:
            raise not_found(campaign_id)
        return found

    async def list(
        self, *, page_size: int, page_token: str, states: Sequence[int], type_: int, segment: str, creator: str,
        active_during: Interval | None,
    ) -> CampaignPage:
        rules.validate_list_filter(states=states, type_=type_, segment=segment,
                                   active_during=active_during or Interval())
        limit = clamp_page_size(page_size)
        during = active_during or Interval()
        query = {"states": sorted(states), "type": type_, "segment": segment, "creator": creator,
                 "during": [_iso(during.start_time), _iso(during.end_time)]}
        after = self._page_tokens.decode(page_token, query=query)
        async with self._db.unit_of_work(read_only=True) as session:
            found = await self._repository.page(
                session, after=(datetime.fromisoformat(after[0]), after[1]) if after is not None else None,
                limit=limit + 1, states=states, type_=type_, segment=segment, creator=creator,
                active_during=active_during)
        page, more = found[:limit], len(found) > limit
        last = page[-1] if page else None
        token = (self._page_tokens.encode([_iso(last.updated_at), last.campaign_id], query=query)
                 if more and last is not None else "")
        return CampaignPage(page, token)

    async def update(self, *, changes: Campaign, paths: Sequence[str], etag: str, actor: Principal) -> Campaign:
        rules.check_mask(paths)
        async with self._db.unit_of_work() as session:
            current = await self._current(session, changes.campaign_id, etag)
            rules.check_editable(current, paths)
            merged = rules.apply(current, changes, paths)
            rules.validate(merged, reporting_currency=self._currency).raise_if_any()
            updated = await self._repository.update(session, merged)
            await self._publish(session, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("campaign_updated", campaign_id=updated.campaign_id, fields=sorted(paths))
        return updated

    async def delete(self, *, campaign_id: str, etag: str, actor: Principal) -> None:
        async with self._db.unit_of_work() as session:
            current = await self._current(session, campaign_id, etag)
            rules.check_deletable(current)
            await self._repository.delete(session, campaign_id)
            await self._outbox.append_many(session, [(current.name, ChangeType.CHANGE_TYPE_DELETED, None)],
                                           actor=actor.subject, resource_type=CAMPAIGN_TYPE)
        log.info("campaign_deleted", campaign_id=campaign_id)

    # --- lifecycle: one verb per custom method -----------------------------------------------

    async def submit(self, *, campaign_id: str, etag: str, request_id: uuid.UUID | None,
                     actor: Principal) -> Campaign:
        return await self._step(Action.SUBMIT, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor)

    async def approve(self, *, campaign_id: str, etag: str, comment: str, request_id: uuid.UUID | None,
                      actor: Principal) -> Campaign:
        return await self._step(Action.APPROVE, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor, reason=comment)

    async def reject(self, *, campaign_id: str, etag: str, reason: str, request_id: uuid.UUID | None,
                     actor: Principal) -> Campaign:
        return await self._step(Action.REJECT, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor, reason=reason)

    async def schedule(self, *, campaign_id: str, etag: str, launch_at: datetime | None,
                       request_id: uuid.UUID | None, actor: Principal) -> Campaign:
        return await self._step(Action.SCHEDULE, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor, launch_at=launch_at)

    async def launch(self, *, campaign_id: str, etag: str, request_id: uuid.UUID | None,
                     actor: Principal) -> Campaign:
        return await self._step(Action.LAUNCH, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor)

    async def pause(self, *, campaign_id: str, etag: str, reason: str, request_id: uuid.UUID | None,
                    actor: Principal) -> Campaign:
        return await self._step(Action.PAUSE, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor, reason=reason)

    async def resume(self, *, campaign_id: str, etag: str, request_id: uuid.UUID | None,
                     actor: Principal) -> Campaign:
        return await self._step(Action.RESUME, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor)

    async def complete(self, *, campaign_id: str, etag: str, request_id: uuid.UUID | None,
                       actor: Principal) -> Campaign:
        return await self._step(Action.COMPLETE, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor)

    async def cancel(self, *, campaign_id: str, etag: str, reason: str, request_id: uuid.UUID | None,
                     actor: Principal) -> Campaign:
        return await self._step(Action.CANCEL, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                actor=actor, reason=reason)

    async def _step(
        self, action: Action, *, campaign_id: str, etag: str, request_id: uuid.UUID | None, actor: Principal,
        reason: str = "", launch_at: datetime | None = None,
    ) -> Campaign:
        """One lifecycle transition: checked against the state table, recorded, and published."""
        now = self._clock()
        rules.check_transition_input(action, reason=reason, launch_at=launch_at, now=now)
        async with self._db.unit_of_work() as session:
            earlier = await self._idempotency.claim(
                session, principal=actor.subject, request_id=request_id, method=rules.METHODS[action],
                resource_name=f"campaigns/{campaign_id}")
            if earlier is not None:
                return await self._replay(session, earlier)
            current = await self._current(session, campaign_id, etag)
            offers = await self._offers.page(session, campaign_id) if action is Action.SUBMIT else []
            moved, step = rules.transition(current, action, actor=actor.subject, now=now, reason=reason,
                                           launch_at=launch_at, offers=offers)
            await self._repository.record_transition(session, campaign_id, step)
            updated = await self._repository.update(session, moved)
            await self._publish(session, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("campaign_transition", campaign_id=campaign_id, action=action.value,
                 from_state=step.from_state.name, to_state=step.to_state.name)
        return updated

    async def _current(self, session: AsyncConnection, campaign_id: str, etag: str) -> Campaign:
        """The campaign, locked for this unit of work; NOT_FOUND or ABORTED (stale etag) otherwise."""
        current = await self._repository.get(session, campaign_id, for_update=True)
        if current is None:
            raise not_found(campaign_id)
        if etag and etag != current.etag:
            raise Aborted("campaign changed since it was read; re-read and retry", reason="ETAG_MISMATCH",
                          metadata={"campaign_id": campaign_id})
        return current

    async def _replay(self, session: AsyncConnection, earlier_name: str) -> Campaign:
        campaign_id = earlier_name.removeprefix("campaigns/")
        existing = await self._repository.get(session, campaign_id)
        if existing is None:
            raise NotFound("the campaign this request acted on no longer exists", reason="CAMPAIGN_NOT_FOUND",
                           metadata={"campaign_id": campaign_id})
        return existing

    async def _publish(self, session: AsyncConnection, campaign: Campaign, change_type: int, actor: Principal) -> None:
        await self._outbox.append_many(session, [(campaign.name, change_type, self._feed_payload(campaign))],
                                       actor=actor.subject, resource_type=CAMPAIGN_TYPE)


def not_found(campaign_id: str) -> NotFound:
    return NotFound(f"campaign {campaign_id} not found", reason="CAMPAIGN_NOT_FOUND",
                    metadata={"campaign_id": campaign_id})


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""
