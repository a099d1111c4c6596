"""Errors as RFC 9457 `application/problem+json`, from gRPC statuses and from the gateway itself.

Every error a client sees has `type`, `title`, `status` and `detail`; bad input adds
`invalid_params` (one `{name, reason}` per bad field, from google.rpc.BadRequest), and a
service's stable `reason` (google.rpc.ErrorInfo, e.g. `CUSTOMER_NOT_FOUND`) travels as
`reason`. `trace_id` is there when tracing is on, so support can find the request.

gRPC code -> HTTP status:

    INVALID_ARGUMENT, OUT_OF_RANGE     400   the caller's input (OUT_OF_RANGE is a client error too)
    UNAUTHENTICATED                    401   with `WWW-Authenticate: Bearer`
    PERMISSION_DENIED                  403
    NOT_FOUND                          404
    ALREADY_EXISTS, ABORTED            409
    FAILED_PRECONDITION                409   see below
    RESOURCE_EXHAUSTED                 429   a service's quota (it says so with an ErrorInfo);
                                             `Retry-After` from google.rpc.RetryInfo when given
    RESOURCE_EXHAUSTED, no ErrorInfo   502   gRPC's own refusal, e.g. a message over the size limit
    UNAVAILABLE                        503
    DEADLINE_EXCEEDED                  504
    anything else                      502   fixed text: no upstream message, reason or address

FAILED_PRECONDITION is 409, not 412: RFC 9110 keeps 412 for conditional request headers
(`If-Match`, `If-Unmodified-Since`) that evaluated false, while FAILED_PRECONDITION means the
resource is not in a state that allows the operation (a merged or erased customer, an attribute
still in use): "a conflict with the current state of the target resource", which is 409. A
client tells the 409s apart by `type` and `reason`. Should a route accept `If-Match` one day,
the stale-etag ABORTED of that route is the 412.

A RESOURCE_EXHAUSTED that no service raised on purpose comes from gRPC itself: a request or
reply message over a channel's or server's size limit, or a server out of streams. It is not
429: retrying the same request fails the same way. Nor is it 413: the gateway's own body limit
(`CRM_GATEWAY_MAX_BODY_BYTES`, 413 before the body is read) keeps a request far below the
services' message limit (a proto message is not larger than its JSON form), so reaching the
service's limit means the platform is misconfigured or a reply was too big, which is a 502 for
the client and a `peer_call_failed` warning for operators.

Only text a service chose to send reaches a client: the `detail` of a 4xx is the status message
of an error a service raised on purpose (it carries the platform's ErrorInfo). gRPC's own
status strings (a transport failure, a size limit: "SERVER: Received message larger than max
(20971535 vs. 16777216)") describe the inside of the platform and are replaced by the problem's
title. Server errors (5xx) never carry the upstream's message or reason: those describe the
inside of the platform (addresses, databases), not anything the client can act on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from crmkit.errors import DomainError, InvalidArgument

MEDIA_TYPE = "application/problem+json"
# RFC 9457 recommends a tag URI (RFC 4151) when the type is not a page to dereference.
TYPE_PREFIX = "tag:crm-platform,2026:problem:"
WWW_AUTHENTICATE = 'Bearer realm="crm"'
# RFC 6750: a token that was sent but is not acceptable is an `invalid_token` error.
_INVALID_TOKEN_REASONS = frozenset({
    "INVALID_TOKEN", "TOKEN_EXPIRED", "TOKEN_CLAIM_MISSING", "TOKEN_NOT_YET_VALID", "TOKEN_LIFETIME_TOO_LONG",
    "ALGORITHM_NOT_ALLOWED", "UNKNOWN_SIGNING_KEY", "WRONG_ISSUER", "WRONG_AUDIENCE"})


@dataclass(frozen=True, slots=True)
class Kind:
    """One problem type: its HTTP status, `type` slug and fixed `title`."""

    status: int
    slug: str
    title: str

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.slug


INVALID_ARGUMENT = Kind(400, "invalid-argument", "Invalid argument")
OUT_OF_RANGE = Kind(400, "out-of-range", "Out of range")
UNAUTHENTICATED = Kind(401, "unauthenticated", "Unauthenticated")
PERMISSION_DENIED = Kind(403, "permission-denied", "Permission denied")
NOT_FOUND = Kind(404, "not-found", "Not found")
CONTENT_TOO_LARGE = Kind(413, "content-too-large", "Content too large")
ALREADY_EXISTS = Kind(409, "already-exists", "Already exists")
ABORTED = Kind(409, "aborted", "Concurrent change")
FAILED_PRECONDITION = Kind(409, "failed-precondition", "Failed precondition")
RESOURCE_EXHAUSTED = Kind(429, "resource-exhausted", "Too many requests")
INTERNAL = Kind(500, "internal", "Internal error")
BAD_GATEWAY = Kind(502, "bad-gateway", "Bad gateway")
UNAVAILABLE = Kind(503, "unavailable", "Service unavailable")
DEADLINE_EXCEEDED = Kind(504, "deadline-exceeded", "Deadline exceeded")

KIND_BY_CODE: Mapping[grpc.StatusCode, Kind] = {
    grpc.StatusCode.INVALID_ARGUMENT: INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE: OUT_OF_RANGE,
    grpc.StatusCode.UNAUTHENTICATED: UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: PERMISSION_DENIED,
    grpc.StatusCode.NOT_FOUND: NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: ALREADY_EXISTS,
    grpc.StatusCode.ABORTED: ABORTED,
    grpc.StatusCode.FAILED_PRECONDITION: FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE: UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: DEADLINE_EXCEEDED,
}

# What a client is told about a server-side failure, whatever the upstream said.
SERVER_DETAIL = {
    INTERNAL.status: "the gateway failed to handle the request",
    BAD_GATEWAY.status: "a platform service failed to answer the request",
    UNAVAILABLE.status: "a platform service is unavailable; retry later",
    DEADLINE_EXCEEDED.status: "a platform service did not answer in time; retry later",
}


class InvalidParam(BaseModel):
    """One bad part of the request: a body field path, a path parameter or a header."""

    name: str = Field(examples=["customer.mobile_phone"])
    reason: str = Field(examples=["must be in E.164 form, e.g. +8613812345678"])


class Problem(BaseModel):
    """An RFC 9457 problem detail (`application/problem+json`)."""

    type: str = Field(description="URI of the problem type; stable, compare it rather than `title`.",
                      examples=[NOT_FOUND.type])
    title: str = Field(description="Short summary of the problem type.", examples=[NOT_FOUND.title])
    status: int = Field(description="The HTTP status code.", examples=[404])
    detail: str = Field(description="What went wrong with this request, for people.")
    invalid_params: list[InvalidParam] | None = Field(
        default=None, description="Every bad field at once, on 400 only.")
    reason: str | None = Field(
        default=None, description="The service's stable UPPER_SNAKE reason, e.g. `CUSTOMER_NOT_FOUND`.",
        examples=["CUSTOMER_NOT_FOUND"])
    trace_id: str | None = Field(default=None, description="Trace of this request, when tracing is on.")


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem(
    kind: Kind, detail: str, *, invalid_params: Sequence[tuple[str, str]] = (), reason: str = "",
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """The response for one problem; 5xx details are replaced by fixed text."""
    body: dict[str, Any] = {
        "type": kind.type, "title": kind.title, "status": kind.status,
        "detail": SERVER_DETAIL.get(kind.status, detail),
    }
    if invalid_params:
        body["invalid_params"] = [{"name": name, "reason": why} for name, why in invalid_params]
    if reason and kind.status < 500:
        body["reason"] = reason
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        body["trace_id"] = format(context.trace_id, "032x")
    all_headers = dict(headers or {})
    if kind.status == 401:
        challenge = WWW_AUTHENTICATE
        if reason in _INVALID_TOKEN_REASONS:
            challenge += ', error="invalid_token"'
        all_headers.setdefault("WWW-Authenticate", challenge)
    return ProblemResponse(body, status_code=kind.status, headers=all_headers)


def kind_of_code(code: grpc.StatusCode) -> Kind:
    return KIND_BY_CODE.get(code, BAD_GATEWAY)


def from_rpc_error(error: grpc.aio.AioRpcError, *, renames: Mapping[str, str] | None = None) -> ProblemResponse:
    """Translate a failed call to a peer service, details included; `renames` maps a request
    field to what the client sent (`request_id` -> the `Idempotency-Key` header)."""
    status = _rich_status(error)
    violations: list[tuple[str, str]] = []
    reason = ""
    raised_on_purpose = False
    headers: dict[str, str] = {}
    for any_detail in status.details if status is not None else ():
        if any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            any_detail.Unpack(bad_request)
            violations.extend(((renames or {}).get(v.field, v.field), v.description)
                              for v in bad_request.field_violations)
        elif any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            reason = info.reason
            raised_on_purpose = True
        elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta().total_seconds()
            headers["Retry-After"] = str(max(1, math.ceil(delay)))
    kind = kind_of_code(error.code())
    if kind is RESOURCE_EXHAUSTED and not raised_on_purpose:
        kind, headers = BAD_GATEWAY, {}
    # gRPC's own strings (error.details() without a rich status) are never quoted.
    detail = status.message if raised_on_purpose and status is not None and status.message else kind.title
    if kind.status != 400:
        violations = []
    return problem(kind, detail, invalid_params=violations, reason=reason, headers=headers)


def from_domain_error(error: DomainError, *, headers: Mapping[str, str] | None = None) -> ProblemResponse:
    """Translate an error the gateway raised itself (authentication, authorisation, input, limits)."""
    kind = kind_of_code(error.code)
    violations = [(v.field, v.description) for v in error.violations] if isinstance(
        error, InvalidArgument) else []
    return problem(kind, error.message, invalid_params=violations, reason=error.reason, headers=headers)


def from_http_status(status_code: int, detail: str = "", *,
                     headers: Mapping[str, str] | None = None) -> ProblemResponse:
    """A problem for a plain HTTP condition (no such route, method not allowed)."""
    if status_code == NOT_FOUND.status:
        return problem(NOT_FOUND, detail or "no such resource", headers=headers)
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "Error"
    kind = Kind(status_code, phrase.lower().replace(" ", "-"), phrase)
    return problem(kind, detail or phrase, headers=headers)


def _rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    try:
        return rpc_status.from_call(error)
    except ValueError:  # trailers disagree with the status: trust the status code only
        return None


_RESPONSE_TEXT = {
    400: "Bad input: every bad field is named in `invalid_params`.",
    401: "No bearer token, or one that is not valid (expired, wrong signature, issuer or audience).",
    403: "The token's roles do not allow this route, or this customer (a relationship manager's book).",
    404: "No such resource.",
    409: "Conflicts with the current state: see `type` and `reason`.",
    413: "The body is larger than the gateway accepts (the limit is stated in the API description); "
         "refused before it is read, reason `BODY_TOO_LARGE`.",
    429: "Over this route's rate limit for the caller (reason `RATE_LIMITED`, limit below), or a "
         "service's quota is exhausted: retry after `Retry-After` seconds.",
    500: "The gateway failed.",
    502: "A platform service failed.",
    503: "A platform service is unavailable; safe to retry.",
    504: "A platform service did not answer in time.",
}
# What any authenticated route can answer besides its own.
COMMON_STATUSES = (401, 403, 429, 500, 502, 503, 504)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route: its own problem statuses plus the common ones.

    Declared with the `Problem` model; the application's OpenAPI hook files them under
    `application/problem+json`.
    """
    return {
        status: {"model": Problem, "description": _RESPONSE_TEXT[status]}
        for status in sorted({*statuses, *COMMON_STATUSES})
    }
