"""Trigger rule orchestration, in the caller's unit of work (crmkit.db's rule): each change writes its
outbox event in the same transaction. An offer action's campaign (and offer) must exist, and the
campaign must be a triggered one that has not ended."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence

from google.protobuf.message import Message

from crm_campaign.campaigns import service as campaign_service
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.offers import service as offer_service
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.triggers import rules
from crm_campaign.triggers.model import ACTIONS, TriggerRule
from crm_campaign.triggers.repository import TriggerRuleRepository
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

TRIGGER_RULE_TYPE = "crm.campaign.v1.TriggerRule"

FeedPayload = Callable[[TriggerRule], Message]


class TriggerRules:
    """The trigger rule use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(
        self, *, repository: TriggerRuleRepository, campaigns: CampaignRepository, offers: OfferRepository,
        outbox: Outbox, idempotency: IdempotencyKeys, page_tokens: PageTokens, feed_payload: FeedPayload,
        clock: Clock = utc_now,
    ) -> None:
        self._repository = repository
        self._campaigns = campaigns
        self._offers = offers
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._clock = clock

    async def create(self, *, uow: UnitOfWork, rule: TriggerRule, request_id: uuid.UUID | None, request: Message,
                     actor: Principal) -> TriggerRule:
        rule = rules.for_create(rule)
        if not rule.trigger_rule_id:
            rule = dataclasses.replace(rule, trigger_rule_id=f"trigger-{uuid.uuid4().hex[:16]}")
        rules.raise_if_invalid(rules.validate(rule), rule.trigger_rule_id)
        rule = dataclasses.replace(rule, creator=actor.subject, fire_count=0, last_fired_at=None)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateTriggerRule",
            resource_name=rule.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        await self._check_action_target(uow, rule)
        created = await self._repository.insert(uow, rule)
        if created is None:
            raise AlreadyExists(f"trigger rule {rule.trigger_rule_id} already exists", reason="TRIGGER_RULE_EXISTS",
                                metadata={"trigger_rule_id": rule.trigger_rule_id})
        await self._publish(uow, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("trigger_rule_created", trigger_rule_id=created.trigger_rule_id,
                 event_type=created.event_type.name)
        return created

    async def get(self, *, uow: UnitOfWork, trigger_rule_id: str) -> TriggerRule:
        found = await self._repository.get(uow, trigger_rule_id)
        if found is None:
            raise not_found(trigger_rule_id)
        return found

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str, event_type: int, state: int,
                   campaign: str) -> Page[TriggerRule]:
        rules.validate_list_filter(event_type=event_type, state=state, campaign=campaign)
        limit = clamp_page_size(page_size)
        query = {"event_type": event_type, "state": state, "campaign": campaign}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page(
            uow, after=(after[0], after[1]) if after is not None else None, limit=limit + 1, event_type=event_type,
            state=state, campaign_id=campaign.removeprefix("campaigns/"))
        return self._page_tokens.page(found, limit=limit, key=lambda r: [r.display_name, r.trigger_rule_id],
                                      query=query)

    async def update(self, *, uow: UnitOfWork, changes: TriggerRule, paths: Sequence[str], etag: str,
                     actor: Principal) -> TriggerRule:
        rules.check_mask(paths)
        current = await self._locked(uow=uow, trigger_rule_id=changes.trigger_rule_id, etag=etag)
        merged = rules.apply(current, changes, paths)
        rules.raise_if_invalid(rules.validate(merged), current.trigger_rule_id)
        # A rule whose campaign has since ended can still be disabled or renamed; only a new
        # action target is checked.
        if {path.partition(".")[0] for path in paths} & set(ACTIONS):
            await self._check_action_target(uow, merged)
        updated = await self._repository.update(uow, merged)
        await self._publish(uow, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("trigger_rule_updated", trigger_rule_id=updated.trigger_rule_id, fields=sorted(paths))
        return updated

    async def delete(self, *, uow: UnitOfWork, trigger_rule_id: str, etag: str, actor: Principal) -> None:
        current = await self._locked(uow=uow, trigger_rule_id=trigger_rule_id, etag=etag)
        await self._repository.delete(uow, trigger_rule_id)
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=TRIGGER_RULE_TYPE)
        log.info("trigger_rule_deleted", trigger_rule_id=trigger_rule_id)

    async def _check_action_target(self, uow: UnitOfWork, rule: TriggerRule) -> None:
        """NOT_FOUND for a missing campaign or offer, FAILED_PRECONDITION for one that cannot be triggered."""
        action = rule.offer_action
        if action is None:
            return
        campaign_id = rule.campaign_id
        campaign = await self._campaigns.get(uow, campaign_id)
        if campaign is None:
            raise campaign_service.not_found(campaign_id)
        if action.offer:
            offer_id = action.offer.rsplit("/", 1)[-1]
            if await self._offers.get(uow, campaign_id, offer_id) is None:
                raise offer_service.not_found(campaign_id, offer_id)
        rules.check_offer_campaign(campaign, now=self._clock())

    async def _locked(self, *, uow: UnitOfWork, trigger_rule_id: str, etag: str) -> TriggerRule:
        return await load_for_update(self._repository.get(uow, trigger_rule_id, for_update=True), etag=etag,
                                     not_found=lambda: not_found(trigger_rule_id))

    async def _replay(self, *, uow: UnitOfWork, name: str) -> TriggerRule:
        """The rule an earlier call with the same request_id created."""
        return await self.get(uow=uow, trigger_rule_id=name.removeprefix("triggerRules/"))

    async def _publish(self, uow: UnitOfWork, rule: TriggerRule, change_type: int, actor: Principal) -> None:
        await self._outbox.append(uow, resource_name=rule.name, change_type=change_type,
                                  payload=self._feed_payload(rule), actor=actor.subject)


def not_found(trigger_rule_id: str) -> NotFound:
    return NotFound(f"trigger rule {trigger_rule_id} not found", reason="TRIGGER_RULE_NOT_FOUND",
                    metadata={"trigger_rule_id": trigger_rule_id})
