"""Domain errors, and their one mapping to gRPC status codes with google.rpc details.

Service code raises these; the server's call interceptor turns them into a status with
`ErrorInfo` (reason + domain) and, for bad input, `BadRequest` naming every field. Code never
sets a status by hand and never returns an empty reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: its path in the request (e.g. `customer.mobile_phone`) and the rule it breaks."""

    field: str
    description: str


@dataclass
class DomainError(Exception):
    """Base of every error a service raises on purpose; `reason` is UPPER_SNAKE and stable."""

    message: str
    reason: str = "ERROR"
    metadata: Mapping[str, str] = field(default_factory=dict)

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.message


class InvalidArgument(DomainError):
    """The request is malformed; `violations` names every bad field at once."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Iterable[FieldViolation], *, reason: str = "INVALID_ARGUMENT"):
        self.violations = tuple(violations)
        super().__init__(message=_invalid_request(self.violations), reason=reason)


def _invalid_request(violations: Iterable[FieldViolation], left_off: int = 0) -> str:
    summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
    return f"invalid request: {summary}" + (f"; and {left_off} more" if left_off else "")


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(DomainError):
    """A concurrent change won (stale etag, serialisation failure): re-read and retry."""

    code = grpc.StatusCode.ABORTED


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    """A dependency (database, peer service) cannot be reached right now; safe to retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(DomainError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(DomainError):
    """An RPC the contract declares but the service does not serve yet."""

    code = grpc.StatusCode.UNIMPLEMENTED


# A status travels in the call's trailing metadata, which gRPC clients refuse beyond 8 KiB by
# default (as RESOURCE_EXHAUSTED: the caller would see a broken peer, not its own bad input), and
# the violations are in it twice (the message and BadRequest). So they are reported in order up to
# this many bytes of text, each clipped, and the message says how many more there were.
VIOLATION_TEXT_BUDGET = 1536
VIOLATION_TEXT_CLIP = 256  # characters of one field path or description


def to_status(error: DomainError, *, domain: str) -> status_pb2.Status:
    """The google.rpc.Status for a domain error: ErrorInfo always, BadRequest for bad fields."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=domain, metadata=dict(error.metadata))
    details = [_pack(info)]
    message = error.message
    if isinstance(error, InvalidArgument):
        reported = _reported(error.violations)
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in reported
            ]
        )
        details.append(_pack(bad_request))
        if reported != error.violations:
            message = _invalid_request(reported, left_off=len(error.violations) - len(reported))
    return status_pb2.Status(code=error.code.value[0], message=message, details=details)


def _reported(violations: tuple[FieldViolation, ...]) -> tuple[FieldViolation, ...]:
    """The first violations, clipped, within `VIOLATION_TEXT_BUDGET` (always at least one)."""
    reported: list[FieldViolation] = []
    used = 0
    for violation in violations:
        clipped = FieldViolation(_clip(violation.field), _clip(violation.description))
        size = len(clipped.field.encode()) + len(clipped.description.encode())
        if reported and used + size > VIOLATION_TEXT_BUDGET:
            break
        reported.append(clipped)
        used += size
    return tuple(reported)


def _clip(text: str) -> str:
    return text if len(text) <= VIOLATION_TEXT_CLIP else text[:VIOLATION_TEXT_CLIP - 1] + "…"


def internal_status(*, domain: str) -> status_pb2.Status:
    """What callers see for a bug: no internals, no personal data, a stable reason."""
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=domain)
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error", details=[_pack(info)])


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
