"""Domain errors become the right canonical status with google.rpc details."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2, error_details_pb2

from crmkit.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound, internal_status, to_status


def unpack(status, message_type):  # type: ignore[no-untyped-def]
    for detail in status.details:
        if detail.Is(message_type.DESCRIPTOR):
            message = message_type()
            detail.Unpack(message)
            return message
    return None


def test_invalid_argument_names_every_field() -> None:
    error = InvalidArgument([FieldViolation("customer.email", "must be an e-mail"),
                             FieldViolation("customer.full_name", "is required")])
    status = to_status(error, domain="profile.crm")
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad = unpack(status, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("customer.email", "must be an e-mail"), ("customer.full_name", "is required")]
    info = unpack(status, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain) == ("INVALID_ARGUMENT", "profile.crm")


def test_each_error_keeps_its_own_code_and_reason() -> None:
    assert NotFound("x", reason="CUSTOMER_NOT_FOUND").code is grpc.StatusCode.NOT_FOUND
    status = to_status(AlreadyExists("taken", reason="CUSTOMER_EXISTS", metadata={"customer_id": "C1"}), domain="d")
    assert status.code == code_pb2.ALREADY_EXISTS
    info = unpack(status, error_details_pb2.ErrorInfo)
    assert info.reason == "CUSTOMER_EXISTS" and info.metadata["customer_id"] == "C1"
    assert unpack(status, error_details_pb2.BadRequest) is None


def test_internal_status_says_nothing_about_the_cause() -> None:
    status = internal_status(domain="profile.crm")
    assert status.code == code_pb2.INTERNAL and status.message == "internal error"


def test_many_violations_are_reported_first_ones_first_within_what_grpc_metadata_carries() -> None:
    # A body with a thousand bad items: all of them would not fit the 8 KiB trailing metadata a
    # gRPC client accepts, and the caller would get RESOURCE_EXHAUSTED instead of its 400.
    violations = [FieldViolation(f"consents[{i}].purpose", "must be one of the listed purposes") for i in range(1000)]
    status = to_status(InvalidArgument(violations), domain="profile.crm")
    bad = unpack(status, error_details_pb2.BadRequest)
    reported = [(v.field, v.description) for v in bad.field_violations]
    assert 10 <= len(reported) < 1000
    assert reported == [(v.field, v.description) for v in violations[:len(reported)]]
    assert status.message.endswith(f"; and {1000 - len(reported)} more")
    assert status.message.startswith("invalid request: consents[0].purpose: must be one of the listed purposes; ")
    assert len(status.message.encode()) + status.ByteSize() < 6 * 1024


def test_a_huge_violation_is_clipped_and_still_reported() -> None:
    status = to_status(InvalidArgument([FieldViolation("note", "x" * 100_000), FieldViolation("b", "bad")]),
                       domain="d")
    bad = unpack(status, error_details_pb2.BadRequest)
    assert bad.field_violations[0].field == "note" and bad.field_violations[0].description.endswith("…")
    assert len(status.message.encode()) + status.ByteSize() < 6 * 1024


def test_few_violations_keep_the_errors_own_message() -> None:
    error = InvalidArgument([FieldViolation("a", "is required")])
    assert to_status(error, domain="d").message == error.message == "invalid request: a: is required"
