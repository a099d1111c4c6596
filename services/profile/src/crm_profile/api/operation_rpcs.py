"""Long-running operation RPCs of ProfileService (AIP-151): proto -> arguments, one kit call,
the Operation proto back (the kit keeps operations as protos already).

These RPCs open no unit of work: `crmkit.operations.Operations` is the kit's own background
machinery, which crmkit.db's rule lets run on `Database.raw()`; each of its calls owns its one
statement (a cancel is a single UPDATE), and a watch polls on fresh connections so it holds no
transaction open while it waits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.profile.v1 import operations_pb2
from crmkit.operations import Operations, parse_name

# The kinds of operation the profile service runs (ListOperationsRequest.kind).
KINDS = ("profile.import", "profile.recompute_features", "profile.rotate_key", "profile.retention_purge")


class OperationRpcs:
    """Read, list, cancel and watch the service's operations."""

    _operations: Operations

    async def GetOperation(self, request: operations_pb2.GetOperationRequest, context: grpc.aio.ServicerContext
                           ) -> operations_pb2.GetOperationResponse:
        operation = await self._operations.get(operation_id=parse_name(request.name))
        return operations_pb2.GetOperationResponse(operation=operation)

    async def ListOperations(self, request: operations_pb2.ListOperationsRequest, context: grpc.aio.ServicerContext
                             ) -> operations_pb2.ListOperationsResponse:
        page = await self._operations.list(page_size=request.page_size, page_token=request.page_token,
                                           kind=request.kind, states=list(request.states))
        return operations_pb2.ListOperationsResponse(operations=page.items,
                                                     next_page_token=page.next_page_token)

    async def CancelOperation(self, request: operations_pb2.CancelOperationRequest,
                              context: grpc.aio.ServicerContext) -> operations_pb2.CancelOperationResponse:
        operation = await self._operations.cancel(operation_id=parse_name(request.name))
        return operations_pb2.CancelOperationResponse(operation=operation)

    async def WatchOperation(self, request: operations_pb2.WatchOperationRequest, context: grpc.aio.ServicerContext
                             ) -> AsyncIterator[operations_pb2.WatchOperationResponse]:
        async for operation in self._operations.watch(operation_id=parse_name(request.name)):
            yield operations_pb2.WatchOperationResponse(operation=operation)
