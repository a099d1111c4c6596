"""Customer RPCs of ProfileService: proto -> arguments, one unit of work and one service call in it, result -> proto."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.profile.v1 import profile_service_pb2 as pb
from crm_profile.api import customer_messages
from crm_profile.customers.service import Customers
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.outbox import ChangeFeed
from crmkit.resources import ResourceName, purpose_from

CUSTOMER = ResourceName("customers/{customer_id}")


class CustomerRpcs:
    """Create, read, update, delete and watch customers."""

    _db: Database
    _customers: Customers
    _feed: ChangeFeed

    async def CreateCustomer(self, request: pb.CreateCustomerRequest, context: grpc.aio.ServicerContext
                             ) -> pb.CreateCustomerResponse:
        async with self._db.unit_of_work() as uow:
            view = await self._customers.create(uow=uow,
                customer=customer_messages.to_domain(request.customer),
                request_id=parse_request_id(request.request_id), request=request,
                actor=current_principal(),
            )
        response = pb.CreateCustomerResponse()
        customer_messages.to_proto(view, response.customer)
        return response

    async def GetCustomer(self, request: pb.GetCustomerRequest, context: grpc.aio.ServicerContext
                          ) -> pb.GetCustomerResponse:
        view = await self._customers.get(
            customer_id=CUSTOMER.parse_one(request.name), purpose=purpose_from(request.audit),
            actor=current_principal(),
        )
        response = pb.GetCustomerResponse()
        customer_messages.to_proto(view, response.customer)  # in place: no copy of the whole message
        return response

    async def ListCustomers(self, request: pb.ListCustomersRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ListCustomersResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._customers.list(uow=uow,
                page_size=request.page_size, page_token=request.page_token,
                relationship_manager_id=request.relationship_manager_id, branch_id=request.branch_id,
                purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return pb.ListCustomersResponse(customers=[customer_messages.to_proto(v) for v in page.items],
                                        next_page_token=page.next_page_token)

    async def UpdateCustomer(self, request: pb.UpdateCustomerRequest, context: grpc.aio.ServicerContext
                             ) -> pb.UpdateCustomerResponse:
        customer_id = CUSTOMER.parse_one(request.customer.name, "customer.name")
        async with self._db.unit_of_work() as uow:
            view = await self._customers.update(
                uow=uow,
                changes=customer_messages.to_domain(request.customer, customer_id=customer_id,
                                                    paths=request.update_mask.paths),
                paths=list(request.update_mask.paths), etag=request.customer.etag,
                purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return pb.UpdateCustomerResponse(customer=customer_messages.to_proto(view))

    async def DeleteCustomer(self, request: pb.DeleteCustomerRequest, context: grpc.aio.ServicerContext
                             ) -> pb.DeleteCustomerResponse:
        async with self._db.unit_of_work() as uow:
            await self._customers.delete(uow=uow, customer_id=CUSTOMER.parse_one(request.name), etag=request.etag,
                                         purpose=purpose_from(request.audit), actor=current_principal())
        return pb.DeleteCustomerResponse()

    async def WatchChanges(self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.WatchChangesResponse]:
        async for events in self._feed.stream(after_cursor=request.after_cursor,
                                              resource_types=list(request.resource_types)):
            yield pb.WatchChangesResponse(events=events)
