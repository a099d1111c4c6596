"""Offer orchestration, in the caller's unit of work (crmkit.db's rule): a change holds the campaign's
row lock so offers cannot change under a submission, and writes its outbox event in the same transaction."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence

from google.protobuf.message import Message

from crm_campaign.campaigns import service as campaign_service
from crm_campaign.campaigns.model import Campaign
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.offers import rules
from crm_campaign.offers.model import Offer
from crm_campaign.offers.repository import OfferRepository
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size

log = get_logger("crm.campaign")

OFFER_TYPE = "crm.campaign.v1.Offer"

FeedPayload = Callable[[Offer], Message]


class Offers:
    """The offer use cases: keyword-only, the caller's unit of work first, the calling principal."""

    def __init__(
        self, *, repository: OfferRepository, campaigns: CampaignRepository, outbox: Outbox,
        idempotency: IdempotencyKeys, page_tokens: PageTokens, feed_payload: FeedPayload, reporting_currency: str,
        knows_template: rules.KnowsTemplate,
    ) -> None:
        self._knows_template = knows_template
        self._repository = repository
        self._campaigns = campaigns
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._currency = reporting_currency

    async def create(self, *, uow: UnitOfWork, offer: Offer, request_id: uuid.UUID | None, request: Message,
                     actor: Principal) -> Offer:
        offer = rules.normalise(offer)
        if not offer.offer_id:
            offer = dataclasses.replace(offer, offer_id=f"offer-{uuid.uuid4().hex[:16]}")
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateOffer",
            resource_name=offer.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        campaign = await self._locked_campaign(uow=uow, campaign_id=offer.campaign_id)
        rules.check_campaign_is_draft(campaign)
        rules.validate(offer, campaign=campaign, reporting_currency=self._currency,
                       knows_template=self._knows_template).raise_if_any()
        rules.check_room_for_another(await self._repository.count(uow, offer.campaign_id))
        created = await self._repository.insert(uow, offer)
        if created is None:
            raise AlreadyExists(f"offer {offer.offer_id} already exists in campaign {offer.campaign_id}",
                                reason="OFFER_EXISTS", metadata={"offer_id": offer.offer_id})
        await self._publish(uow, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("offer_created", campaign_id=created.campaign_id, offer_id=created.offer_id)
        return created

    async def get(self, *, uow: UnitOfWork, campaign_id: str, offer_id: str) -> Offer:
        found = await self._repository.get(uow, campaign_id, offer_id)
        if found is None:
            raise not_found(campaign_id, offer_id)
        return found

    async def list(self, *, uow: UnitOfWork, campaign_id: str, page_size: int, page_token: str) -> Page[Offer]:
        limit = clamp_page_size(page_size)
        query = {"campaign": campaign_id}
        after = self._page_tokens.decode(page_token, query=query)
        if await self._campaigns.get(uow, campaign_id) is None:
            raise campaign_service.not_found(campaign_id)
        found = await self._repository.page(uow, campaign_id, after=after, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=lambda offer: offer.offer_id, query=query)

    async def update(self, *, uow: UnitOfWork, changes: Offer, paths: Sequence[str], etag: str,
                     actor: Principal) -> Offer:
        rules.check_mask(paths)
        campaign = await self._locked_campaign(uow=uow, campaign_id=changes.campaign_id, offer_id=changes.offer_id)
        current = await self._locked(uow=uow, campaign_id=changes.campaign_id, offer_id=changes.offer_id, etag=etag)
        rules.check_campaign_is_draft(campaign)
        merged = rules.apply(current, changes, paths)
        rules.validate(merged, campaign=campaign, reporting_currency=self._currency,
                       knows_template=self._knows_template).raise_if_any()
        updated = await self._repository.update(uow, merged)
        await self._publish(uow, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("offer_updated", campaign_id=updated.campaign_id, offer_id=updated.offer_id, fields=sorted(paths))
        return updated

    async def delete(self, *, uow: UnitOfWork, campaign_id: str, offer_id: str, etag: str, actor: Principal) -> None:
        campaign = await self._locked_campaign(uow=uow, campaign_id=campaign_id, offer_id=offer_id)
        current = await self._locked(uow=uow, campaign_id=campaign_id, offer_id=offer_id, etag=etag)
        rules.check_campaign_is_draft(campaign)
        await self._repository.delete(uow, campaign_id, offer_id)
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=OFFER_TYPE)
        log.info("offer_deleted", campaign_id=campaign_id, offer_id=offer_id)

    async def _locked_campaign(self, *, uow: UnitOfWork, campaign_id: str, offer_id: str = "") -> Campaign:
        """The offer's campaign, locked so that no submission runs while its offers change."""
        campaign = await self._campaigns.get(uow, campaign_id, for_update=True)
        if campaign is None:
            raise not_found(campaign_id, offer_id) if offer_id else campaign_service.not_found(campaign_id)
        return campaign

    async def _locked(self, *, uow: UnitOfWork, campaign_id: str, offer_id: str, etag: str) -> Offer:
        return await load_for_update(self._repository.get(uow, campaign_id, offer_id, for_update=True), etag=etag,
                                     not_found=lambda: not_found(campaign_id, offer_id))

    async def _replay(self, *, uow: UnitOfWork, name: str) -> Offer:
        """The offer an earlier call with the same request_id created."""
        _, campaign_id, _, offer_id = name.split("/")
        return await self.get(uow=uow, campaign_id=campaign_id, offer_id=offer_id)

    async def _publish(self, uow: UnitOfWork, offer: Offer, change_type: int, actor: Principal) -> None:
        await self._outbox.append(uow, resource_name=offer.name, change_type=change_type,
                                  payload=self._feed_payload(offer), actor=actor.subject)


def not_found(campaign_id: str, offer_id: str) -> NotFound:
    return NotFound(f"offer {offer_id} not found in campaign {campaign_id}", reason="OFFER_NOT_FOUND",
                    metadata={"campaign_id": campaign_id, "offer_id": offer_id})
