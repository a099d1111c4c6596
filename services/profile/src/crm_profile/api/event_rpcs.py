"""Customer event RPCs of ProfileService: proto -> arguments, one service call, result -> proto.

ListCustomerEvents opens one read-only unit of work and awaits the service in it. IngestEvents
opens none: ingest is crmkit.db's documented exception for COPY-based bulk work, and
`Events.ingest` commits each batch of the stream in a raw transaction of its own (its docstring
says who opens what)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.profile.v1 import event_pb2 as eb
from crm_profile.api import event_messages
from crm_profile.events.service import Events
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.resources import ResourceName, purpose_from

CUSTOMER = ResourceName("customers/{customer_id}")


class EventRpcs:
    """Ingest behaviour events and transactions; list a customer's events."""

    _db: Database
    _events: Events

    async def IngestEvents(self, request_iterator: AsyncIterator[eb.IngestEventsRequest],
                           context: grpc.aio.ServicerContext) -> eb.IngestEventsResponse:
        result = await self._events.ingest(batches=event_messages.batches(request_iterator),
                                           actor=current_principal())
        return event_messages.ingest_response(result)

    async def ListCustomerEvents(self, request: eb.ListCustomerEventsRequest, context: grpc.aio.ServicerContext
                                 ) -> eb.ListCustomerEventsResponse:
        customer_id = CUSTOMER.parse_one(request.parent, "parent")
        narrowing = event_messages.filter_to_domain(request)
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._events.list(
                uow=uow, customer_id=customer_id, narrowing=narrowing, page_size=request.page_size,
                page_token=request.page_token, purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return eb.ListCustomerEventsResponse(events=[event_messages.to_proto(e) for e in page.items],
                                             next_page_token=page.next_page_token)
