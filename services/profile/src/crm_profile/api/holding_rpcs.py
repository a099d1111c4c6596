"""Holding RPCs of ProfileService: proto -> arguments, one unit of work and one service call in it, result -> proto."""

from __future__ import annotations

import grpc

from crm.profile.v1 import holding_pb2 as hb
from crm_profile.api import holding_messages
from crm_profile.holdings.service import Holdings
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.resources import ResourceName, purpose_from

CUSTOMER = ResourceName("customers/{customer_id}")
HOLDING = ResourceName("customers/{customer_id}/holdings/{holding_id}")
# `customers/-` in ListHoldings: every customer the caller may see (AIP-159).
ALL_CUSTOMERS = "-"


class HoldingRpcs:
    """Create, read, list, update and delete a customer's holdings."""

    _db: Database
    _holdings: Holdings

    async def CreateHolding(self, request: hb.CreateHoldingRequest, context: grpc.aio.ServicerContext
                            ) -> hb.CreateHoldingResponse:
        customer_id = CUSTOMER.parse_one(request.parent, "parent")
        async with self._db.unit_of_work() as uow:
            holding = await self._holdings.create(uow=uow,
                holding=holding_messages.to_domain(request.holding, customer_id=customer_id),
                request_id=parse_request_id(request.request_id), request=request, purpose=purpose_from(request.audit),
                actor=current_principal(),
            )
        return hb.CreateHoldingResponse(holding=holding_messages.to_proto(holding))

    async def GetHolding(self, request: hb.GetHoldingRequest, context: grpc.aio.ServicerContext
                         ) -> hb.GetHoldingResponse:
        customer_id, holding_id = HOLDING.parse(request.name)
        async with self._db.unit_of_work(read_only=True) as uow:
            holding = await self._holdings.get(uow=uow, customer_id=customer_id, holding_id=holding_id,
                                               purpose=purpose_from(request.audit), actor=current_principal())
        return hb.GetHoldingResponse(holding=holding_messages.to_proto(holding))

    async def ListHoldings(self, request: hb.ListHoldingsRequest, context: grpc.aio.ServicerContext
                           ) -> hb.ListHoldingsResponse:
        customer_id = CUSTOMER.parse_one(request.parent, "parent")
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._holdings.list(uow=uow,
                customer_id=None if customer_id == ALL_CUSTOMERS else customer_id,
                narrowing=holding_messages.filter_to_domain(request), page_size=request.page_size,
                page_token=request.page_token, purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return hb.ListHoldingsResponse(holdings=[holding_messages.to_proto(h) for h in page.items],
                                       next_page_token=page.next_page_token)

    async def UpdateHolding(self, request: hb.UpdateHoldingRequest, context: grpc.aio.ServicerContext
                            ) -> hb.UpdateHoldingResponse:
        customer_id, holding_id = HOLDING.parse(request.holding.name, "holding.name")
        async with self._db.unit_of_work() as uow:
            holding = await self._holdings.update(uow=uow,
                changes=holding_messages.to_domain(request.holding, customer_id=customer_id, holding_id=holding_id),
                paths=list(request.update_mask.paths), etag=request.holding.etag,
                purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return hb.UpdateHoldingResponse(holding=holding_messages.to_proto(holding))

    async def DeleteHolding(self, request: hb.DeleteHoldingRequest, context: grpc.aio.ServicerContext
                            ) -> hb.DeleteHoldingResponse:
        customer_id, holding_id = HOLDING.parse(request.name)
        async with self._db.unit_of_work() as uow:
            await self._holdings.delete(uow=uow, customer_id=customer_id, holding_id=holding_id, etag=request.etag,
                                        purpose=purpose_from(request.audit), actor=current_principal())
        return hb.DeleteHoldingResponse()
