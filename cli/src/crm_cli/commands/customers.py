"""`crm customers get|create|show`: the profile service over gRPC; `show` adds every other service's view."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import grpc
from google.protobuf import json_format
from rich.table import Table

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_cli import customer_view, output
from crm_cli.calls import caller_metadata, service_target
from crm_cli.options import data_dir_option, json_option, output_option

CALL_TIMEOUT_SECONDS = 10.0
PURPOSES = [audit_pb2.AccessPurpose.Name(value).removeprefix("ACCESS_PURPOSE_").lower()
            for value in audit_pb2.AccessPurpose.values() if value != audit_pb2.ACCESS_PURPOSE_UNSPECIFIED]


def _show(customer: customer_pb2.Customer, as_json: bool) -> None:
    if as_json:
        output.print_json(output.message_to_dict(customer))
    else:
        output.console().print(output.message_table(customer, title=customer.name or None))


async def _get(target: str, metadata: tuple[tuple[str, str], ...], request: profile_service_pb2.GetCustomerRequest
               ) -> customer_pb2.Customer:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
        reply = await stub.GetCustomer(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        return reply.customer


async def _create(target: str, metadata: tuple[tuple[str, str], ...],
                  request: profile_service_pb2.CreateCustomerRequest) -> customer_pb2.Customer:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
        reply = await stub.CreateCustomer(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        return reply.customer


def _call(coroutine: Coroutine[Any, Any, customer_pb2.Customer]) -> customer_pb2.Customer:
    try:
        return asyncio.run(coroutine)
    except grpc.aio.AioRpcError as exc:
        output.fail(output.describe_rpc_error(exc))


Command = TypeVar("Command", bound=Callable[..., Any])


def target_option(function: Command) -> Command:
    return click.option("--target", default=lambda: service_target("profile"),
                        show_default="127.0.0.1:$CRM_PROFILE_PORT or 50051",
                        help="Profile service address.")(function)


@click.group()
def customers() -> None:
    """Customers in the profile service.

    Calls carry CRM_TOKEN as bearer token; without it a one-hour admin token is minted with the
    local development secret (CRM_JWT_SECRET or DATA_DIR/secrets.env). Admins see personal
    data masked; use a channel_app or relationship_manager token to see it in clear.
    """


@customers.command("get")
@click.argument("customer_id")
@click.option("--purpose", type=click.Choice(PURPOSES), default="customer_service", show_default=True,
              help="Why you read the customer: recorded in the audit log.")
@click.option("--justification", default="", help="Free text for the audit log (at most 200 characters).")
@target_option
@data_dir_option
@json_option
def get(customer_id: str, purpose: str, justification: str, target: str, data_dir: Path, as_json: bool) -> None:
    """Show one customer, masked for the caller's role."""
    request = profile_service_pb2.GetCustomerRequest(
        name=f"customers/{customer_id}",
        audit=audit_pb2.AuditContext(purpose=audit_pb2.AccessPurpose.Value(f"ACCESS_PURPOSE_{purpose.upper()}"),
                                     justification=justification),
    )
    _show(_call(_get(target, caller_metadata(data_dir), request)), as_json)


@customers.command("create")
@click.option("--file", "source", type=click.File("r", encoding="utf-8"), required=True,
              help="A Customer as JSON (proto field names or lowerCamelCase); - for stdin.")
@click.option("--request-id", help="Idempotency key (UUID); a fresh one by default.")
@target_option
@data_dir_option
@json_option
def create(source: IO[str], request_id: str | None, target: str, data_dir: Path, as_json: bool) -> None:
    """Create a customer from a JSON file; a retry with the same --request-id is safe."""
    customer = customer_pb2.Customer()
    try:
        json_format.ParseDict(json.load(source), customer)
    except (json.JSONDecodeError, json_format.ParseError) as exc:
        output.fail(f"{getattr(source, 'name', 'input')}: not a Customer: {exc}", code=2)
    request = profile_service_pb2.CreateCustomerRequest(customer=customer, request_id=request_id or str(uuid.uuid4()))
    _show(_call(_create(target, caller_metadata(data_dir), request)), as_json)


def _show_360(view: dict[str, Any], parts: list[customer_view.Part]) -> None:
    missing = view["unavailable"]
    title = view["customer"] + (f" (partial: {', '.join(missing)} missing)" if missing else "")
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("Source", style="magenta", no_wrap=True)
    table.add_column("Field", style="cyan", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for part in parts:
        if part.status != "ok":
            table.add_row(part.source, part.status, part.detail, style="yellow")
            continue
        for index, (name, value) in enumerate(part.rows):
            table.add_row(part.source if index == 0 else "", name, value)
        table.add_section()
    output.console().print(table)


@customers.command("show")
@click.argument("customer_id")
@click.option("--deadline", type=click.FloatRange(0.1, 60), default=3.0, show_default=True,
              help="Seconds each service has to answer; past it, its part shows as unavailable.")
@data_dir_option
@output_option("table", "json")
def show(customer_id: str, deadline: float, data_dir: Path, output_format: str) -> None:
    """A customer's 360 view in one table: profile (customer, holdings, consents), segment
    (classification), feedback (open complaints) and campaign (dispatches), asked in parallel.

    A service that does not answer within --deadline shows as "unavailable" and the view is marked
    partial (exit status 0); an unknown customer exits 1. Addresses: 127.0.0.1:$CRM_<SERVICE>_PORT
    or each service's default port. Reads are audited with purpose customer_service.

    \b
    Example:
      crm customers show C0000042
      crm customers show C0000042 --output json --deadline 1
    """
    customer = customer_id if customer_id.startswith("customers/") else f"customers/{customer_id}"
    targets = {source: service_target(source) for source in customer_view.SOURCES}
    metadata = caller_metadata(data_dir)
    try:
        parts = asyncio.run(customer_view.gather(customer, targets, metadata, deadline))
    except customer_view.CustomerNotFound as exc:
        output.fail(str(exc))
    view = customer_view.as_json(customer, parts)
    if output_format == "json":
        output.print_json(view)
    else:
        _show_360(view, parts)
