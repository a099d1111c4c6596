"""gRPC status -> RFC 9457 problem: every code, the google.rpc details, and no internals on 5xx."""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from crm_gateway import problems
from crmkit.errors import FieldViolation, InvalidArgument, NotFound, ResourceExhausted, to_status


def rpc_error(status: status_pb2.Status) -> grpc.aio.AioRpcError:
    converted = rpc_status.to_status(status)
    return grpc.aio.AioRpcError(converted.code, grpc.aio.Metadata(),
                                grpc.aio.Metadata(*converted.trailing_metadata), details=converted.details)


def bare_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def body(response) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(response.body)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 502),  # gRPC's own (no ErrorInfo): see the test below
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INTERNAL, 502),
        (grpc.StatusCode.UNKNOWN, 502),
        (grpc.StatusCode.UNIMPLEMENTED, 502),
        (grpc.StatusCode.DATA_LOSS, 502),
        (grpc.StatusCode.CANCELLED, 502),
    ],
)
def test_each_code_has_its_status_and_a_problem_body(code, status) -> None:
    response = problems.from_rpc_error(bare_error(code, "upstream said something"))
    assert response.status_code == status
    assert response.media_type == "application/problem+json"
    problem = body(response)
    assert problem["status"] == status
    assert problem["type"].startswith("tag:crm-platform,2026:problem:")
    assert problem["title"]
    assert problem["detail"]
    assert ("www-authenticate" in response.headers) == (status == 401)


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.FAILED_PRECONDITION])
def test_grpc_own_status_text_never_reaches_a_client(code) -> None:
    """Without the platform's ErrorInfo, no service chose the text: it is gRPC's, e.g. a
    transport or metadata failure, and names the inside of the platform."""
    response = problems.from_rpc_error(bare_error(code, "SERVER: Stream removed at 10.0.3.7:50051"))
    problem = body(response)
    assert "10.0.3.7" not in json.dumps(problem) and "SERVER" not in json.dumps(problem)
    assert problem["detail"] == problem["title"]


def test_a_message_size_refusal_is_a_502_without_the_internal_limit() -> None:
    message = "SERVER: Received message larger than max (20971535 vs. 16777216)"
    response = problems.from_rpc_error(bare_error(grpc.StatusCode.RESOURCE_EXHAUSTED, message))
    problem = body(response)
    assert response.status_code == 502
    assert "retry-after" not in response.headers
    assert "16777216" not in json.dumps(problem) and "larger" not in problem["detail"]


def test_a_quota_a_service_raised_is_a_429_with_its_reason() -> None:
    error = ResourceExhausted("at most 1000 events per message", reason="BATCH_TOO_LARGE")
    response = problems.from_rpc_error(rpc_error(to_status(error, domain="profile.crm")))
    assert response.status_code == 429
    assert body(response)["reason"] == "BATCH_TOO_LARGE"
    assert body(response)["detail"] == "at most 1000 events per message"


def test_bad_request_details_become_invalid_params_and_error_info_the_reason() -> None:
    error = InvalidArgument([FieldViolation("customer.full_name", "is required"),
                             FieldViolation("customer.mobile_phone", "must be E.164")])
    response = problems.from_rpc_error(rpc_error(to_status(error, domain="profile.crm")))
    problem = body(response)
    assert response.status_code == 400
    assert problem["invalid_params"] == [
        {"name": "customer.full_name", "reason": "is required"},
        {"name": "customer.mobile_phone", "reason": "must be E.164"},
    ]
    assert problem["reason"] == "INVALID_ARGUMENT"
    assert "customer.full_name: is required" in problem["detail"]


def test_client_errors_keep_the_service_message_and_reason() -> None:
    error = NotFound("customer C1 not found", reason="CUSTOMER_NOT_FOUND")
    problem = body(problems.from_rpc_error(rpc_error(to_status(error, domain="profile.crm"))))
    assert problem["detail"] == "customer C1 not found"
    assert problem["reason"] == "CUSTOMER_NOT_FOUND"
    assert "invalid_params" not in problem


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN])
def test_server_errors_carry_no_upstream_internals(code) -> None:
    info = error_details_pb2.ErrorInfo(reason="DATABASE_UNAVAILABLE", domain="profile.crm")
    packed = any_pb2.Any()
    packed.Pack(info)
    leaky = "failed to connect to all addresses; last error: 10.0.3.7:50051 postgres password=..."
    status = status_pb2.Status(code=code.value[0], message=leaky, details=[packed])
    problem = body(problems.from_rpc_error(rpc_error(status)))
    text = json.dumps(problem)
    assert "10.0.3.7" not in text and "postgres" not in text and "DATABASE_UNAVAILABLE" not in text
    assert set(problem) <= {"type", "title", "status", "detail", "trace_id"}


def test_retry_info_becomes_retry_after() -> None:
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000))
    info = error_details_pb2.ErrorInfo(reason="RATE_LIMITED", domain="profile.crm")
    packed = [any_pb2.Any(), any_pb2.Any()]
    packed[0].Pack(retry)
    packed[1].Pack(info)
    status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="slow down",
                               details=packed)
    response = problems.from_rpc_error(rpc_error(status))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"


def test_trailers_that_disagree_with_the_status_are_ignored() -> None:
    status = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="other text")
    converted = rpc_status.to_status(status)
    error = grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(),
                                 grpc.aio.Metadata(*converted.trailing_metadata), details="the real text")
    response = problems.from_rpc_error(error)
    assert response.status_code == 404
    assert body(response)["detail"] == "Not found"  # neither text is vouched for by an ErrorInfo
