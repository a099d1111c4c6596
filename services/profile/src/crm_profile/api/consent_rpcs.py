"""Consent and contact-preference RPCs of ProfileService: proto -> arguments, one service call,
result -> proto."""

from __future__ import annotations

import grpc

from crm.profile.v1 import consent_pb2 as pb
from crm_profile.api import consent_messages
from crm_profile.consents.service import Consents
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.resources import ResourceName, purpose_from

CUSTOMER = ResourceName("customers/{customer_id}")
PREFERENCES = ResourceName("customers/{customer_id}/contactPreferences")


class ConsentRpcs:
    """The consent ledger and contact preferences."""

    _db: Database
    _consents: Consents

    async def RecordConsent(self, request: pb.RecordConsentRequest, context: grpc.aio.ServicerContext
                            ) -> pb.RecordConsentResponse:
        async with self._db.unit_of_work() as uow:
            recorded = await self._consents.record(uow=uow,
                customer_id=CUSTOMER.parse_one(request.parent, "parent"),
                records=consent_messages.records_to_domain(list(request.consents)),
                request_id=parse_request_id(request.request_id), request=request, purpose=purpose_from(request.audit),
                actor=current_principal(),
            )
        return pb.RecordConsentResponse(consents=[consent_messages.record_to_proto(r) for r in recorded.records],
                                        states=[consent_messages.state_to_proto(s) for s in recorded.states])

    async def ListConsents(self, request: pb.ListConsentsRequest, context: grpc.aio.ServicerContext
                           ) -> pb.ListConsentsResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._consents.list_states(uow=uow,
                customer_id=CUSTOMER.parse_one(request.parent, "parent"), purposes=list(request.purposes),
                channels=list(request.channels), page_size=request.page_size, page_token=request.page_token,
                purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return pb.ListConsentsResponse(states=[consent_messages.state_to_proto(s) for s in page.items],
                                       next_page_token=page.next_page_token)

    async def ListConsentHistory(self, request: pb.ListConsentHistoryRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.ListConsentHistoryResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._consents.history(uow=uow,
                customer_id=CUSTOMER.parse_one(request.parent, "parent"), purposes=list(request.purposes),
                channels=list(request.channels), page_size=request.page_size, page_token=request.page_token,
                purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return pb.ListConsentHistoryResponse(consents=[consent_messages.record_to_proto(r) for r in page.items],
                                             next_page_token=page.next_page_token)

    async def GetContactPreferences(self, request: pb.GetContactPreferencesRequest,
                                    context: grpc.aio.ServicerContext) -> pb.GetContactPreferencesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            preferences = await self._consents.get_preferences(uow=uow,
                customer_id=PREFERENCES.parse_one(request.name), purpose=purpose_from(request.audit),
                actor=current_principal())
        return pb.GetContactPreferencesResponse(
            contact_preferences=consent_messages.preferences_to_proto(preferences))

    async def UpdateContactPreferences(self, request: pb.UpdateContactPreferencesRequest,
                                       context: grpc.aio.ServicerContext) -> pb.UpdateContactPreferencesResponse:
        customer_id = PREFERENCES.parse_one(request.contact_preferences.name, "contact_preferences.name")
        async with self._db.unit_of_work() as uow:
            preferences = await self._consents.update_preferences(uow=uow,
                changes=consent_messages.preferences_to_domain(request.contact_preferences, customer_id=customer_id),
                paths=list(request.update_mask.paths), etag=request.contact_preferences.etag,
                purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return pb.UpdateContactPreferencesResponse(
            contact_preferences=consent_messages.preferences_to_proto(preferences))
