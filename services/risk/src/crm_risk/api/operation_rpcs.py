"""Long-running operation RPCs of RiskService (AIP-151): proto -> arguments, one kit call,
the Operation proto back. No unit of work: `crmkit.operations.Operations` runs each call on
`Database.raw()` (see crm_profile's operation_rpcs for why)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.registry.model import KIND as TRAIN_KIND
from crmkit.operations import Operations, parse_name

# The kinds of operation the risk service runs (ListOperationsRequest.kind).
KINDS = (TRAIN_KIND,)


class OperationRpcs:
    """Read, list, cancel and watch the service's operations."""

    _operations: Operations

    async def GetOperation(self, request: pb.GetOperationRequest, context: grpc.aio.ServicerContext
                           ) -> pb.GetOperationResponse:
        return pb.GetOperationResponse(operation=await self._operations.get(operation_id=parse_name(request.name)))

    async def ListOperations(self, request: pb.ListOperationsRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListOperationsResponse:
        page = await self._operations.list(page_size=request.page_size, page_token=request.page_token,
                                           kind=request.kind, states=list(request.states))
        return pb.ListOperationsResponse(operations=page.items, next_page_token=page.next_page_token)

    async def CancelOperation(self, request: pb.CancelOperationRequest, context: grpc.aio.ServicerContext
                              ) -> pb.CancelOperationResponse:
        operation = await self._operations.cancel(operation_id=parse_name(request.name))
        return pb.CancelOperationResponse(operation=operation)

    async def WatchOperation(self, request: pb.WatchOperationRequest, context: grpc.aio.ServicerContext
                             ) -> AsyncIterator[pb.WatchOperationResponse]:
        async for operation in self._operations.watch(operation_id=parse_name(request.name)):
            yield pb.WatchOperationResponse(operation=operation)
