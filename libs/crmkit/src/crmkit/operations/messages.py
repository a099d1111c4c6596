"""The Operation proto: its states, its resource name, and a row as the message."""

from __future__ import annotations

import uuid
from typing import Any

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from crm.common.v1 import operation_pb2
from crmkit.errors import NotFound
from crmkit.resources import ResourceName

State = operation_pb2.OperationState
PENDING = State.OPERATION_STATE_PENDING
RUNNING = State.OPERATION_STATE_RUNNING
SUCCEEDED = State.OPERATION_STATE_SUCCEEDED
FAILED = State.OPERATION_STATE_FAILED
CANCELLED = State.OPERATION_STATE_CANCELLED
UNFINISHED = (PENDING, RUNNING)
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})

OPERATION = ResourceName("operations/{operation_id}")


def name_of(operation_id: uuid.UUID) -> str:
    return f"operations/{operation_id}"


def parse_name(name: str, field: str = "name") -> uuid.UUID:
    """The id in `operations/{id}`: INVALID_ARGUMENT when malformed, NOT_FOUND when it cannot exist."""
    raw = OPERATION.parse_one(name, field)
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFound(f"operation {raw} not found", reason="OPERATION_NOT_FOUND") from exc


def to_proto(row: Any) -> operation_pb2.Operation:
    message = operation_pb2.Operation(
        name=name_of(row["operation_id"]), kind=row["kind"], state=row["state"], creator=row["creator"],
        progress=operation_pb2.Progress(done=row["progress_done"], total=row["progress_total"],
                                        stage=row["progress_stage"], failed=row["progress_failed"]),
    )
    for field in ("create_time", "update_time", "end_time"):
        if row[field] is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromDatetime(row[field])
            getattr(message, field).CopyFrom(stamp)
    message.metadata.ParseFromString(row["metadata"])
    if row["response"] is not None:
        message.response.ParseFromString(row["response"])
    if row["error"] is not None:
        message.error.ParseFromString(row["error"])
    return message


def packed_any(message: Message | None) -> bytes | None:
    if message is None:
        return None
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed.SerializeToString()


def stopped_status(message: str, *, domain: str) -> bytes:
    info = error_details_pb2.ErrorInfo(reason="OPERATION_ABANDONED", domain=domain)
    packed = any_pb2.Any()
    packed.Pack(info)
    return status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[packed]).SerializeToString()

