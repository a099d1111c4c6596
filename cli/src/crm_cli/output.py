"""Terminal output shared by the commands: consoles, JSON, tables of messages, gRPC errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NoReturn

import click
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from rich.console import Console
from rich.table import Table
from rich.text import Text


def console(*, stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


def message_to_dict(message: Message) -> dict[str, Any]:
    """Proto field names (as in error messages and proto comments), enums by name."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _is_date(value: Mapping[str, Any]) -> bool:
    return set(value) <= {"year", "month", "day"} and "year" in value


def flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(`field.path`, text) rows of a message dict; `google.type.Date` as YYYY-MM-DD."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and _is_date(value):
            yield path, f"{value['year']:04d}-{value.get('month', 0):02d}-{value.get('day', 0):02d}"
        elif isinstance(value, Mapping):
            yield from flatten(value, path + ".")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                yield from flatten(item, f"{path}[{index}].")
        elif isinstance(value, list):
            yield path, ", ".join(str(v) for v in value)
        else:
            yield path, str(value)


def message_table(message: Message, *, title: str | None = None) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("Field", style="cyan", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for path, text in flatten(message_to_dict(message)):
        table.add_row(path, text)
    return table


def _status_details(error: grpc.RpcError) -> list[Any]:
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == "grpc-status-details-bin":
            return list(status_pb2.Status.FromString(value).details)
    return []


def error_reason(error: grpc.RpcError) -> str:
    """The `ErrorInfo` reason of a failed call (`CUSTOMER_EXISTS`), empty when it carries none."""
    for detail in _status_details(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def describe_error(code_name: str, message: str, details: Iterable[Any]) -> str:
    """`CODE [REASON]: message`, then each BadRequest field violation (field: rule) on its own line."""
    reason = ""
    violations: list[str] = []
    for detail in details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [f"  {v.field}: {v.description}" for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = f" [{info.reason}]"
    if violations:  # the message repeats them all on one line
        message = f"{len(violations)} invalid field(s)"
    return "\n".join([f"{code_name}{reason}: {message}", *violations])


def describe_rpc_error(error: grpc.RpcError) -> str:
    """A failed call, from its status details (see `describe_error`)."""
    code = error.code() if hasattr(error, "code") else None
    message = error.details() if hasattr(error, "details") else str(error)
    return describe_error(code.name if code else "ERROR", message, _status_details(error))


def status_code_name(code: int) -> str:
    return next((c.name for c in grpc.StatusCode if c.value[0] == code), f"CODE_{code}")


def describe_status(status: status_pb2.Status) -> str:
    """A `google.rpc.Status` carried in a message (a failed operation's `error`)."""
    return describe_error(status_code_name(status.code), status.message, status.details)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error to stderr and exit with `code`."""
    console(stderr=True).print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    sys.exit(code)
