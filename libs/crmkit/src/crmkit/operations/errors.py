"""The errors that end an operation; they cross the worker-process boundary, so they pickle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message
from google.rpc import status_pb2

from crmkit.errors import DomainError, to_status


class OperationCancelled(Exception):
    """The operation was asked to stop; raised between batches, it rolls the work back."""


class OperationFailed(Exception):
    """The work failed with this `google.rpc.Status` (serialised: it travels between processes)."""

    def __init__(self, status: bytes) -> None:
        super().__init__("operation failed")
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (OperationFailed, (self.status,))

    @classmethod
    def of(cls, error: DomainError, *, domain: str, details: Sequence[Message] = ()) -> OperationFailed:
        """From a domain error (code, ErrorInfo, BadRequest), with kind-specific `details` added."""
        return cls(failure_status(error, domain=domain, details=details).SerializeToString())


class WorkerCrashed(Exception):
    """A worker raised something unexpected; its traceback was logged in the worker."""


def failure_status(error: DomainError, *, domain: str, details: Sequence[Message] = ()) -> status_pb2.Status:
    status = to_status(error, domain=domain)
    for detail in details:
        packed = status.details.add()
        packed.Pack(detail)
    return status


