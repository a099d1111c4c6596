"""Responses and conversions: recorded once per request id (and per source reference), attributed,
and published on the campaign's feed so segment and risk can use them as features."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from google.protobuf.message import Message

from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.campaigns.service import not_found as campaign_not_found
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.engagement import rules
from crm_campaign.engagement.model import Conversion, OfferResponse, ResponseType
from crm_campaign.engagement.repository import EngagementRepository
from crm_campaign.loyalty.service import Loyalty
from crm_campaign.nba import rules as nba_rules
from crm_campaign.nba.repository import DecisionRepository
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.offers.service import not_found as offer_not_found
from crmkit.auth import Principal
from crmkit.clock import Clock, utc_now
from crmkit.db import UnitOfWork
from crmkit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.validation import Violations

log = get_logger("crm.campaign.engagement")


class Engagement:
    def __init__(
        self, *, repository: EngagementRepository, campaigns: CampaignRepository, offers: OfferRepository,
        dispatches: DispatchRepository, outbox: Outbox, idempotency: IdempotencyKeys,
        response_payload: Callable[[OfferResponse], Message], conversion_payload: Callable[[Conversion], Message],
        reporting_currency: str, loyalty: Loyalty, decisions: DecisionRepository | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._loyalty = loyalty
        self._repository = repository
        self._decisions = decisions or DecisionRepository()
        self._campaigns = campaigns
        self._offers = offers
        self._dispatches = dispatches
        self._outbox = outbox
        self._idempotency = idempotency
        self._response_payload = response_payload
        self._conversion_payload = conversion_payload
        self._currency = reporting_currency
        self._clock = clock

    async def record_response(self, *, uow: UnitOfWork, response: OfferResponse, request_id: uuid.UUID | None,
                              request: Message, actor: Principal) -> OfferResponse:
        now = self._clock()
        v = Violations()
        v.required(request_id, "request_id")
        rules.validate_response(response, now=now, v=v)
        decision_id = nba_rules.decision_id_of(response.decision_id) if response.decision_id else ""
        v.check(decision_id is not None, "response.decision_id",
                "must be a decision_id from GetNextBestAction (a UUID)")
        v.raise_if_any()
        response = dataclasses.replace(response, response_id=uuid.uuid4().hex, recorder=actor.subject)
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="RecordResponse",
            resource_name=response.name, replay=lambda name: self._replay_response(uow=uow, name=name))
        if replayed is not None:
            return replayed
        campaign = await self._campaigns.get(uow, response.campaign_id)
        if campaign is None:
            raise campaign_not_found(response.campaign_id)
        if await self._offers.get(uow, response.campaign_id, response.offer_id) is None:
            raise offer_not_found(response.campaign_id, response.offer_id)
        rules.check_launched(campaign)
        if response.dispatch_id:
            sent = await self._dispatches.get(uow, response.campaign_id, response.dispatch_id)
            if sent is None:
                raise NotFound(f"dispatch {response.dispatch_id} not found in campaign {response.campaign_id}",
                               reason="DISPATCH_NOT_FOUND", metadata={"dispatch_id": response.dispatch_id})
            if (sent.customer_id, sent.offer_id) != (response.customer_id, response.offer_id):
                raise InvalidArgument([FieldViolation("response.dispatch",
                                                      "must be a dispatch of this customer and offer")])
        if decision_id:
            nba_rules.check_response(await self._decisions.get(uow, decision_id), decision_id=decision_id,
                                     customer_id=response.customer_id, campaign_id=response.campaign_id,
                                     offer_id=response.offer_id)
            response = dataclasses.replace(response, decision_id=decision_id)
        recorded = await self._repository.insert_response(uow, response, now)
        if recorded.type == ResponseType.OPTED_OUT:
            await self._repository.stop_channel(uow, recorded.customer_id, recorded.channel, now)
        await self._outbox.append(uow, resource_name=recorded.name, change_type=ChangeType.CHANGE_TYPE_CREATED,
                                  payload=self._response_payload(recorded), actor=actor.subject)
        log.info("response_recorded", campaign_id=recorded.campaign_id, response_type=ResponseType(recorded.type).name)
        return recorded

    async def record_conversion(self, *, uow: UnitOfWork, conversion: Conversion, request_id: uuid.UUID | None,
                                request: Message, actor: Principal) -> Conversion:
        now = self._clock()
        v = Violations()
        v.required(request_id, "request_id")
        rules.validate_conversion(conversion, now=now, reporting_currency=self._currency, v=v)
        v.raise_if_any()
        earlier = await self._repository.conversion_by_reference(uow, conversion.source_reference)
        if earlier is not None:
            return earlier
        provisional = dataclasses.replace(conversion, conversion_id=uuid.uuid4().hex)
        # The campaign is known only after attribution: the claim names the conversion by its id.
        claimed_name = f"conversions/{provisional.conversion_id}"
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="RecordConversion",
            resource_name=claimed_name, replay=lambda name: self._replay_conversion(uow=uow, name=name))
        if replayed is not None:
            return replayed
        if conversion.offer_id:
            named = await self._offers.get(uow, conversion.campaign_id, conversion.offer_id)
            if named is None:
                raise offer_not_found(conversion.campaign_id, conversion.offer_id)
        assert conversion.conversion_time is not None
        contact = rules.attribute(
            conversion.conversion_time, await self._repository.contacts(uow, conversion.customer_id),
            product_code=conversion.product_code,
            offer=(conversion.campaign_id, conversion.offer_id) if conversion.offer_id else None)
        if contact is None:
            raise FailedPrecondition("no contact or control-group assignment of this customer for this offer or "
                                     "product lies within its campaign's attribution window",
                                     reason="NO_ATTRIBUTABLE_CONTACT")
        attributed = dataclasses.replace(
            provisional, campaign_id=contact.campaign_id, offer_id=contact.offer_id, product_code=contact.product_code,
            control_group=contact.control_group, dispatch_id=contact.dispatch_id,
            value=conversion.value or contact.expected_value,
            points_awarded=0 if contact.control_group else contact.conversion_points)
        recorded = await self._repository.insert_conversion(uow, attributed, now)
        if recorded is None:  # the same purchase, recorded by a concurrent call a moment ago
            raced = await self._repository.conversion_by_reference(uow, conversion.source_reference)
            assert raced is not None
            return raced
        if recorded.points_awarded > 0:
            await self._loyalty.earn(uow=uow, customer_id=recorded.customer_id, points=recorded.points_awarded,
                                     reason=f"Conversion on offer {recorded.offer_id}", source=recorded.name,
                                     actor=actor)
        await self._outbox.append(uow, resource_name=recorded.name, change_type=ChangeType.CHANGE_TYPE_CREATED,
                                  payload=self._conversion_payload(recorded), actor=actor.subject)
        log.info("conversion_recorded", campaign_id=recorded.campaign_id, control_group=recorded.control_group)
        return recorded

    async def _replay_response(self, *, uow: UnitOfWork, name: str) -> OfferResponse:
        _, campaign_id, _, response_id = name.split("/")
        found = await self._repository.get_response(uow, campaign_id, response_id)
        if found is None:
            raise NotFound("the response this request recorded no longer exists", reason="RESPONSE_NOT_FOUND")
        return found

    async def _replay_conversion(self, *, uow: UnitOfWork, name: str) -> Conversion:
        conversion_id = name.rsplit("/", 1)[-1]
        found = await self._repository.conversion_by_id(uow, conversion_id)
        if found is None:
            raise NotFound("the conversion this request recorded no longer exists", reason="CONVERSION_NOT_FOUND")
        return found
