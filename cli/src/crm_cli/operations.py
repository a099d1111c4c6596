"""Long-running operations of any service that runs them (AIP-151): list, watch, cancel.

Profile, segment, campaign and risk serve the same four RPCs, each with request messages of its
own package (same field names), so one table says where each service's stub and requests are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

from crm.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from crm.common.v1 import operation_pb2
from crm.profile.v1 import operations_pb2, profile_service_pb2_grpc
from crm.risk.v1 import risk_service_pb2, risk_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2, segment_service_pb2_grpc

Operation = operation_pb2.Operation
FINAL_STATES = frozenset({operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED,
                          operation_pb2.OPERATION_STATE_CANCELLED})
STATE_NAMES = [name.removeprefix("OPERATION_STATE_").lower()
               for name, number in operation_pb2.OperationState.items() if number]
CALL_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class OperationsApi:
    """Where one service's operation RPCs live."""

    stub_type: Callable[[Any], Any]
    messages: ModuleType


SERVICES: dict[str, OperationsApi] = {
    "profile": OperationsApi(profile_service_pb2_grpc.ProfileServiceStub, operations_pb2),
    "segment": OperationsApi(segment_service_pb2_grpc.SegmentServiceStub, segment_service_pb2),
    "campaign": OperationsApi(campaign_service_pb2_grpc.CampaignServiceStub, campaign_service_pb2),
    "risk": OperationsApi(risk_service_pb2_grpc.RiskServiceStub, risk_service_pb2),
}


def resource_name(name: str) -> str:
    """`operations/<id>` from either that or the bare id, as users copy whichever they see."""
    return name if name.startswith("operations/") else f"operations/{name}"


def state_name(state: operation_pb2.OperationState.ValueType) -> str:
    return operation_pb2.OperationState.Name(state).removeprefix("OPERATION_STATE_")


def state_value(name: str) -> int:
    return int(operation_pb2.OperationState.Value(f"OPERATION_STATE_{name.upper()}"))


async def list_operations(api: OperationsApi, stub: Any, *, metadata: Any, states: Sequence[int], kind: str,
                          limit: int) -> list[Operation]:
    """Newest first, following pages until `limit` operations or the last page."""
    found: list[Operation] = []
    token = ""
    while len(found) < limit:
        request = api.messages.ListOperationsRequest(page_size=min(limit - len(found), 1000), page_token=token,
                                                     kind=kind, states=list(states))
        reply = await stub.ListOperations(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        found.extend(reply.operations)
        token = reply.next_page_token
        if not token:
            break
    return found[:limit]


async def cancel(api: OperationsApi, stub: Any, *, metadata: Any, name: str) -> Operation:
    reply = await stub.CancelOperation(api.messages.CancelOperationRequest(name=name), metadata=metadata,
                                       timeout=CALL_TIMEOUT_SECONDS)
    return reply.operation


async def watch(api: OperationsApi, stub: Any, *, metadata: Any, name: str, seconds: float,
                on_update: Callable[[Operation], None]) -> Operation:
    """Follow an operation until its final state; `on_update` sees every change.

    A stream may end without the final state (the server restarting, a proxy's idle limit), so it
    is opened again until the operation is final or `seconds` have passed (TimeoutError).
    """
    last: Operation | None = None
    async with asyncio.timeout(seconds):
        while last is None or last.state not in FINAL_STATES:
            call = stub.WatchOperation(api.messages.WatchOperationRequest(name=name), metadata=metadata)
            async for update in call:
                last = update.operation
                on_update(last)
    return last


def summary(operation: Operation) -> dict[str, Any]:
    """An operation as plain JSON values (integers as numbers, times as ISO 8601)."""
    def when(field: Literal["create_time", "end_time"]) -> str | None:
        return getattr(operation, field).ToJsonString() if operation.HasField(field) else None

    return {
        "name": operation.name, "kind": operation.kind, "state": state_name(operation.state),
        "stage": operation.progress.stage, "done": operation.progress.done, "total": operation.progress.total,
        "failed": operation.progress.failed, "creator": operation.creator,
        "create_time": when("create_time"), "end_time": when("end_time"),
    }
