"""The four Operation RPCs every service with long-running work serves (AIP-151), once.

Each service's `api/operation_rpcs.py` subclasses `OperationRpcs`, naming its generated message
module (the request and response messages are the same shape in every service, in each
service's own package) and its operation kinds::

    class OperationRpcs(KitOperationRpcs):
        messages = segment_service_pb2

These RPCs open no unit of work: `Operations` is the kit's own background machinery, which
crmkit.db's rule lets run on `Database.raw()`; each of its calls owns its one statement (a cancel
is a single UPDATE), and a watch polls on fresh connections so it holds no transaction open
while it waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any, ClassVar

import grpc

from crmkit.operations.messages import parse_name
from crmkit.operations.service import Operations


class OperationRpcs:
    """Read, list, cancel and watch the service's operations."""

    # The service's generated module holding Get/List/Cancel/WatchOperation{Request,Response}.
    messages: ClassVar[ModuleType]
    _operations: Operations

    async def GetOperation(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        operation = await self._operations.get(operation_id=parse_name(request.name))
        return self.messages.GetOperationResponse(operation=operation)

    async def ListOperations(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        page = await self._operations.list(page_size=request.page_size, page_token=request.page_token,
                                           kind=request.kind, states=list(request.states))
        return self.messages.ListOperationsResponse(operations=page.items, next_page_token=page.next_page_token)

    async def CancelOperation(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        operation = await self._operations.cancel(operation_id=parse_name(request.name))
        return self.messages.CancelOperationResponse(operation=operation)

    async def WatchOperation(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for operation in self._operations.watch(operation_id=parse_name(request.name)):
            yield self.messages.WatchOperationResponse(operation=operation)
