"""`crm operations list|watch|cancel`: the long-running work of a service (imports, recomputations...)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import grpc
from rich.table import Table
from rich.text import Text

from crm.common.v1 import operation_pb2
from crm_cli import calls, import_report, operations, output, progress
from crm_cli.options import data_dir_option, output_option, target_option

STATE_STYLE = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan"}
IMPORT_KIND = "profile.import"


def service_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--service", type=click.Choice(list(operations.SERVICES)), default="profile",
                        show_default=True, help="Whose operations.")(function)


def _connection(service: str, target: str | None, data_dir: Path) -> tuple[operations.OperationsApi, str,
                                                                             calls.Metadata]:
    return operations.SERVICES[service], target or calls.service_target(service), calls.caller_metadata(data_dir)


def _table(found: list[operation_pb2.Operation]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for column in ("Name", "Kind", "State", "Progress", "Failed", "Creator", "Created"):
        table.add_column(column, justify="right" if column in ("Progress", "Failed") else "left")
    for operation in found:
        row = operations.summary(operation)
        done = f"{row['done']}/{row['total']}" if row["total"] else str(row["done"])
        table.add_row(row["name"], row["kind"], Text(row["state"], style=STATE_STYLE.get(row["state"], "")),
                      f"{done} {row['stage']}".strip(), str(row["failed"]), row["creator"], row["create_time"] or "")
    return table


def _show(operation: operation_pb2.Operation, output_format: str) -> None:
    if output_format == "json":
        output.print_json(operations.summary(operation))
    else:
        output.console().print(_table([operation]))


@click.group("operations")
def operations_group() -> None:
    """Long-running operations of profile, segment, campaign or risk (--service).

    Calls carry CRM_TOKEN as bearer token, else a one-hour admin token minted with the local
    development secret. Names are `operations/<id>`; the bare id is accepted too.
    """


@operations_group.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(operations.STATE_NAMES),
              help="Only operations in this state; repeat for several.")
@click.option("--kind", default="", help="Only this kind, e.g. profile.import.")
@click.option("--limit", type=click.IntRange(min=1, max=10_000), default=50, show_default=True,
              help="At most this many, newest first.")
@service_option
@output_option("table", "json")
@target_option
@data_dir_option
def list_operations(states: tuple[str, ...], kind: str, limit: int, service: str, output_format: str,
                    target: str | None, data_dir: Path) -> None:
    """List operations, newest first.

    \b
    Example:
      crm operations list --state running --state pending
      crm operations list --service segment --kind segment.materialise --output json
    """
    api, address, metadata = _connection(service, target, data_dir)

    async def fetch() -> list[operation_pb2.Operation]:
        async with grpc.aio.insecure_channel(address) as channel:
            return await operations.list_operations(api, api.stub_type(channel), metadata=metadata, kind=kind,
                                                    states=[operations.state_value(s) for s in states], limit=limit)

    found = calls.run(fetch())
    if output_format == "json":
        output.print_json([operations.summary(o) for o in found])
    else:
        output.console().print(_table(found))


@operations_group.command("watch")
@click.argument("name")
@click.option("--timeout", type=click.FloatRange(min=1), default=3600.0, show_default=True,
              help="Seconds to follow it; it goes on in the service after that.")
@service_option
@output_option("table", "json")
@target_option
@data_dir_option
def watch_operation(name: str, timeout: float, service: str, output_format: str, target: str | None,
                    data_dir: Path) -> None:
    """Follow an operation live until it ends; an import's bad rows are shown at the end.

    Exit status 0 when it succeeded, 1 when it failed, was cancelled or could not be watched.

    \b
    Example:
      crm operations watch operations/1f0c6b1e-2a4e-4b1c-9d7e-0c3f5a9b8e21
    """
    api, address, metadata = _connection(service, target, data_dir)
    resource = operations.resource_name(name)

    async def follow() -> operation_pb2.Operation:
        async with grpc.aio.insecure_channel(address) as channel:
            with progress.OperationBar(output.console(stderr=True), resource) as live:
                return await operations.watch(api, api.stub_type(channel), metadata=metadata, name=resource,
                                              seconds=timeout, on_update=live.update)

    try:
        final = calls.run(follow())
    except TimeoutError:
        output.fail(f"{resource} is still running after {timeout:g} s")
    except KeyboardInterrupt:
        output.fail(f"stopped watching; {resource} goes on", code=130)
    if final.kind == IMPORT_KIND:
        report = import_report.as_dict(final)
        if output_format == "json":
            output.print_json(operations.summary(final) | {"import": report})
        else:
            output.console().print(import_report.summary_line(report), soft_wrap=True)
            if report["bad_rows"]:
                output.console().print(import_report.bad_row_table(report))
    else:
        _show(final, output_format)
    if final.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        output.fail(output.describe_status(final.error) if final.HasField("error")
                    else f"{resource} ended {operations.state_name(final.state)}")


@operations_group.command("cancel")
@click.argument("name")
@service_option
@output_option("table", "json")
@target_option
@data_dir_option
def cancel_operation(name: str, service: str, output_format: str, target: str | None, data_dir: Path) -> None:
    """Ask a pending or running operation to stop; its work is rolled back.

    A pending operation ends CANCELLED at once, a running one at its worker's next check (follow
    it with `crm operations watch`). Cancelling again is safe; one that already succeeded or
    failed exits 1 (FAILED_PRECONDITION, OPERATION_FINISHED).

    \b
    Example:
      crm operations cancel operations/1f0c6b1e-2a4e-4b1c-9d7e-0c3f5a9b8e21
    """
    api, address, metadata = _connection(service, target, data_dir)

    async def ask() -> operation_pb2.Operation:
        async with grpc.aio.insecure_channel(address) as channel:
            return await operations.cancel(api, api.stub_type(channel), metadata=metadata,
                                           name=operations.resource_name(name))

    _show(calls.run(ask()), output_format)
