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
