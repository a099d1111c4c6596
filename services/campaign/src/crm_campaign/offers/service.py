"""Offer orchestration: one unit of work per call, holding the campaign's row lock so offers
cannot change under a submission, and the outbox event in the same transaction."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_campaign.campaigns import service as campaign_service
from crm_campaign.campaigns.model import Campaign
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.offers import rules
from crm_campaign.offers.model import Offer
from crm_campaign.offers.repository import OfferRepository
from crmkit.auth import Principal
from crmkit.db import Database
from crmkit.errors import Aborted, AlreadyExists, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import PageTokens, clamp_page_size

log = get_logger("crm.campaign")

OFFER_TYPE = "crm.campaign.v1.Offer"

FeedPayload = Callable[[Offer], Message]


@dataclasses.dataclass(frozen=True)
class OfferPage:
    offers: Sequence[Offer]
    next_page_token: str


class Offers:
    """The offer use cases. Methods are keyword-only and take the calling principal."""

    def __init__(
        self, *, db: Database, repository: OfferRepository, campaigns: CampaignRepository, outbox: Outbox,
        idempotency: IdempotencyKeys, page_tokens: PageTokens, feed_payload: FeedPayload, reporting_currency: str,
    ) -> None:
        self._db = db
        self._repository = repository
        self._campaigns = campaigns
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._currency = reporting_currency

    async def create(self, *, offer: Offer, request_id: uuid.UUID | None, actor: Principal) -> Offer:
        offer = rules.normalise(offer)
        if not offer.offer_id:
            offer = dataclasses.replace(offer, offer_id=f"offer-{uuid.uuid4().hex[:16]}")
        async with self._db.unit_of_work() as session:
            earlier = await self._idempotency.claim(
                session, principal=actor.subject, request_id=request_id, method="CreateOffer",
                resource_name=offer.name)
            if earlier is not None:
                return await self._replay(session, earlier)
            campaign = await self._locked_campaign(session, offer.campaign_id)
            rules.check_campaign_is_draft(campaign)
            rules.validate(offer, campaign=campaign, reporting_currency=self._currency).raise_if_any()
            rules.check_room_for_another(await self._repository.count(session, offer.campaign_id))
            created = await self._repository.insert(session, offer)
            if created is None:
                raise AlreadyExists(f"offer {offer.offer_id} already exists in campaign {offer.campaign_id}",
                                    reason="OFFER_EXISTS", metadata={"offer_id": offer.offer_id})
            await self._publish(session, created, ChangeType.CHANGE_TYPE_CREATED, actor)
        log.info("offer_created", campaign_id=created.campaign_id, offer_id=created.offer_id)
        return created

    async def get(self, *, campaign_id: str, offer_id: str) -> Offer:
        async with self._db.unit_of_work(read_only=True) as session:
            found = await self._repository.get(session, campaign_id, offer_id)
        if found is None:
            raise _not_found(campaign_id, offer_id)
        return found

    async def list(self, *, campaign_id: str, page_size: int, page_token: str) -> OfferPage:
        limit = clamp_page_size(page_size)
        query = {"campaign": campaign_id}
        after = self._page_tokens.decode(page_token, query=query)
        async with self._db.unit_of_work(read_only=True) as session:
            if await self._campaigns.get(session, campaign_id) is None:
                raise campaign_service.not_found(campaign_id)
            found = await self._repository.page(session, campaign_id, after=after, limit=limit + 1)
        page, more = found[:limit], len(found) > limit
        token = self._page_tokens.encode(page[-1].offer_id, query=query) if more else ""
        return OfferPage(page, token)

    async def update(self, *, changes: Offer, paths: Sequence[str], etag: str, actor: Principal) -> Offer:
        rules.check_mask(paths)
        async with self._db.unit_of_work() as session:
            campaign = await self._locked_campaign(session, changes.campaign_id, offer_id=changes.offer_id)
            current = await self._current(session, changes.campaign_id, changes.offer_id, etag)
            rules.check_campaign_is_draft(campaign)
            merged = rules.apply(current, changes, paths)
            rules.validate(merged, campaign=campaign, reporting_currency=self._currency).raise_if_any()
            updated = await self._repository.update(session, merged)
            await self._publish(session, updated, ChangeType.CHANGE_TYPE_UPDATED, actor)
        log.info("offer_updated", campaign_id=updated.campaign_id, offer_id=updated.offer_id, fields=sorted(paths))
        return updated

    async def delete(self, *, campaign_id: str, offer_id: str, etag: str, actor: Principal) -> None:
        async with self._db.unit_of_work() as session:
            campaign = await self._locked_campaign(session, campaign_id, offer_id=offer_id)
            current = await self._current(session, campaign_id, offer_id, etag)
            rules.check_campaign_is_draft(campaign)
            await self._repository.delete(session, campaign_id, offer_id)
            await self._outbox.append_many(session, [(current.name, ChangeType.CHANGE_TYPE_DELETED, None)],
                                           actor=actor.subject, resource_type=OFFER_TYPE)
        log.info("offer_deleted", campaign_id=campaign_id, offer_id=offer_id)

    async def _locked_campaign(self, session: AsyncConnection, campaign_id: str, *, offer_id: str = "") -> Campaign:
        """The offer's campaign, locked so that no submission runs while its offers change."""
        campaign = await self._campaigns.get(session, campaign_id, for_update=True)
        if campaign is None:
            raise _not_found(campaign_id, offer_id) if offer_id else campaign_service.not_found(campaign_id)
        return campaign

    async def _current(self, session: AsyncConnection, campaign_id: str, offer_id: str, etag: str) -> Offer:
        current = await self._repository.get(session, campaign_id, offer_id, for_update=True)
        if current is None:
            raise _not_found(campaign_id, offer_id)
        if etag and etag != current.etag:
            raise Aborted("offer changed since it was read; re-read and retry", reason="ETAG_MISMATCH",
                          metadata={"offer_id": offer_id})
        return current

    async def _replay(self, session: AsyncConnection, earlier_name: str) -> Offer:
        _, campaign_id, _, offer_id = earlier_name.split("/")
        existing = await self._repository.get(session, campaign_id, offer_id)
        if existing is None:
            raise _not_found(campaign_id, offer_id)
        return existing

    async def _publish(self, session: AsyncConnection, offer: Offer, change_type: int, actor: Principal) -> None:
        await self._outbox.append_many(session, [(offer.name, change_type, self._feed_payload(offer))],
                                       actor=actor.subject, resource_type=OFFER_TYPE)


def _not_found(campaign_id: str, offer_id: str) -> NotFound:
    return NotFound(f"offer {offer_id} not found in campaign {campaign_id}", reason="OFFER_NOT_FOUND",
                    metadata={"campaign_id": campaign_id, "offer_id": offer_id})
