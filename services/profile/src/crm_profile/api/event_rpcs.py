"""Customer event RPCs of ProfileService: proto -> arguments, one service call, result -> proto."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.profile.v1 import event_pb2 as eb
from crm_profile.api import event_messages
from crm_profile.events.service import Events
from crmkit.auth import current_principal
from crmkit.resources import ResourceName, purpose_from

CUSTOMER = ResourceName("customers/{customer_id}")


class EventRpcs:
    """Ingest behaviour events and transactions; list a customer's events."""

    _events: Events

    async def IngestEvents(self, request_iterator: AsyncIterator[eb.IngestEventsRequest],
                           context: grpc.aio.ServicerContext) -> eb.IngestEventsResponse:
        result = await self._events.ingest(batches=event_messages.batches(request_iterator),
                                           actor=current_principal())
        return event_messages.ingest_response(result)

    async def ListCustomerEvents(self, request: eb.ListCustomerEventsRequest, context: grpc.aio.ServicerContext
                                 ) -> eb.ListCustomerEventsResponse:
        page = await self._events.list(
            customer_id=CUSTOMER.parse_one(request.parent, "parent"),
            narrowing=event_messages.filter_to_domain(request), page_size=request.page_size,
            page_token=request.page_token, purpose=purpose_from(request.audit), actor=current_principal(),
        )
        return eb.ListCustomerEventsResponse(events=[event_messages.to_proto(e) for e in page.events],
                                             next_page_token=page.next_page_token)
