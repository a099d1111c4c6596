"""Campaign orchestration. Every function runs in the caller's unit of work (crmkit.db's rule) and
writes its outbox event there, lifecycle steps included."""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime

from google.protobuf.message import Message

from crm_campaign.campaigns import rules
from crm_campaign.campaigns.model import Action, Campaign, CampaignState, Interval
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.offers.repository import OfferRepository
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size

log = get_logger("crm.campaign")

CAMPAIGN_TYPE = "crm.campaign.v1.Campaign"

# Turns a stored campaign into the change-feed payload; supplied by the API layer so this
# module stays free of generated messages.
FeedPayload = Callable[[Campaign], Message]


class Campaigns:
    """The campaign use cases: keyword-only, the caller's unit of work first, the calling principal.
    `request` is the RPC's request message, fingerprinted with its `request_id` (crmkit.idempotency)."""

    def __init__(
        self, *, repository: CampaignRepository, offers: OfferRepository, outbox: Outbox,
        idempotency: IdempotencyKeys, page_tokens: PageTokens, feed_payload: FeedPayload, reporting_currency: str,
        clock: Clock = utc_now,
    ) -> None:
        self._repository = repository
        self._offers = offers
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._currency = reporting_currency
        self._clock = clock

    async def create(self, *, uow: UnitOfWork, campaign: Campaign, request_id: uuid.UUID | None, request: Message,
                     actor: Principal) -> Campaign:
        campaign = rules.normalise(campaign)
        if not campaign.campaign_id:
            campaign = dataclasses.replace(campaign, campaign_id=f"campaign-{uuid.uuid4().hex[:16]}")
        rules.validate(campaign, reporting_currency=self._currency).raise_if_any()
        campaign = dataclasses.replace(campaign, state=CampaignState.DRAFT, creator=actor.subject,
                                       control_seed=secrets.randbits(63))
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateCampaign",
            resource_name=campaign.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        created = await self._repository.insert(uow, campaign)
        if created is None:
            raise AlreadyExists(f"campaign {campaign.campaign_id} already exists", reason="CAMPAIGN_EXISTS",
                                metadata={"campaign_id": campaign.campaign_id})
        await self._publish(uow, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("campaign_created", campaign_id=created.campaign_id, campaign_type=created.type)
        return created

    async def get(self, *, uow: UnitOfWork, campaign_id: str) -> Campaign:
        found = await self._repository.get(uow, campaign_id)
        if found is None:
            raise not_found(campaign_id)
        return found

    async def list(
        self, *, uow: UnitOfWork, page_size: int, page_token: str, states: Sequence[int], type_: int, segment: str,
        creator: str, active_during: Interval | None,
    ) -> Page[Campaign]:
        rules.validate_list_filter(states=states, type_=type_, segment=segment,
                                   active_during=active_during or Interval())
        limit = clamp_page_size(page_size)
        during = active_during or Interval()
        query = {"states": sorted(states), "type": type_, "segment": segment, "creator": creator,
                 "during": [_iso(during.start_time), _iso(during.end_time)]}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page(
            uow, after=(datetime.fromisoformat(after[0]), after[1]) if after is not None else None,
            limit=limit + 1, states=states, type_=type_, segment=segment, creator=creator,
            active_during=active_during)
        return self._page_tokens.page(found, limit=limit, key=lambda c: [_iso(c.updated_at), c.campaign_id],
                                      query=query)

    async def update(self, *, uow: UnitOfWork, changes: Campaign, paths: Sequence[str], etag: str,
                     actor: Principal) -> Campaign:
        rules.check_mask(paths)
        current = await self._locked(uow=uow, campaign_id=changes.campaign_id, etag=etag)
        rules.check_editable(current, paths)
        merged = rules.apply(current, changes, paths)
        rules.validate(merged, reporting_currency=self._currency).raise_if_any()
        updated = await self._repository.update(uow, merged)
        await self._publish(uow, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("campaign_updated", campaign_id=updated.campaign_id, fields=sorted(paths))
        return updated

    async def delete(self, *, uow: UnitOfWork, campaign_id: str, etag: str, actor: Principal) -> None:
        current = await self._locked(uow=uow, campaign_id=campaign_id, etag=etag)
        rules.check_deletable(current)
        await self._repository.delete(uow, campaign_id)
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=CAMPAIGN_TYPE)
        log.info("campaign_deleted", campaign_id=campaign_id)

    # --- lifecycle: one verb per custom method -----------------------------------------------

    async def submit(self, *, uow: UnitOfWork, campaign_id: str, etag: str, request_id: uuid.UUID | None,
                     request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.SUBMIT, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor)

    async def approve(self, *, uow: UnitOfWork, campaign_id: str, etag: str, comment: str, request_id: uuid.UUID | None,
                      request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.APPROVE, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor, reason=comment)

    async def reject(self, *, uow: UnitOfWork, campaign_id: str, etag: str, reason: str, request_id: uuid.UUID | None,
                     request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.REJECT, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor, reason=reason)

    async def schedule(self, *, uow: UnitOfWork, campaign_id: str, etag: str, launch_at: datetime | None,
                       request_id: uuid.UUID | None, request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.SCHEDULE, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor, launch_at=launch_at)

    async def launch(self, *, uow: UnitOfWork, campaign_id: str, etag: str, request_id: uuid.UUID | None,
                     request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.LAUNCH, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor)

    async def pause(self, *, uow: UnitOfWork, campaign_id: str, etag: str, reason: str, request_id: uuid.UUID | None,
                    request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.PAUSE, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor, reason=reason)

    async def resume(self, *, uow: UnitOfWork, campaign_id: str, etag: str, request_id: uuid.UUID | None,
                     request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.RESUME, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor)

    async def complete(self, *, uow: UnitOfWork, campaign_id: str, etag: str, request_id: uuid.UUID | None,
                       request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.COMPLETE, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor)

    async def cancel(self, *, uow: UnitOfWork, campaign_id: str, etag: str, reason: str, request_id: uuid.UUID | None,
                     request: Message, actor: Principal) -> Campaign:
        return await self._step(Action.CANCEL, uow=uow, campaign_id=campaign_id, etag=etag, request_id=request_id,
                                request=request, actor=actor, reason=reason)

    async def _step(
        self, action: Action, *, uow: UnitOfWork, campaign_id: str, etag: str, request_id: uuid.UUID | None,
        request: Message, actor: Principal, reason: str = "", launch_at: datetime | None = None,
    ) -> Campaign:
        """One lifecycle transition: checked against the state table, recorded, and published."""
        now = self._clock()
        rules.check_transition_input(action, reason=reason, launch_at=launch_at, now=now)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method=rules.METHODS[action],
            resource_name=f"campaigns/{campaign_id}", replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        current = await self._locked(uow=uow, campaign_id=campaign_id, etag=etag)
        offers = await self._offers.page(uow, campaign_id) if action is Action.SUBMIT else []
        moved, step = rules.transition(current, action, actor=actor.subject, now=now, reason=reason,
                                       launch_at=launch_at, offers=offers)
        await self._repository.record_transition(uow, campaign_id, step)
        updated = await self._repository.update(uow, moved)
        await self._publish(uow, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("campaign_transition", campaign_id=campaign_id, action=action.value,
                 from_state=step.from_state.name, to_state=step.to_state.name)
        return updated

    async def _locked(self, *, uow: UnitOfWork, campaign_id: str, etag: str) -> Campaign:
        return await load_for_update(self._repository.get(uow, campaign_id, for_update=True), etag=etag,
                                     not_found=lambda: not_found(campaign_id))

    async def _replay(self, *, uow: UnitOfWork, name: str) -> Campaign:
        """The campaign an earlier call with the same request_id answered with."""
        campaign_id = name.removeprefix("campaigns/")
        existing = await self._repository.get(uow, campaign_id)
        if existing is None:
            raise NotFound("the campaign this request acted on no longer exists", reason="CAMPAIGN_NOT_FOUND",
                           metadata={"campaign_id": campaign_id})
        return existing

    async def _publish(self, uow: UnitOfWork, campaign: Campaign, change_type: int, actor: Principal) -> None:
        await self._outbox.append(uow, resource_name=campaign.name, change_type=change_type,
                                  payload=self._feed_payload(campaign), actor=actor.subject)


def not_found(campaign_id: str) -> NotFound:
    return NotFound(f"campaign {campaign_id} not found", reason="CAMPAIGN_NOT_FOUND",
                    metadata={"campaign_id": campaign_id})


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""
