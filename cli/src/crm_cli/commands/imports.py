"""`crm import customers FILE --mapping M.json`: a bulk load through profile's import contract."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import click
import grpc

from crm.common.v1 import operation_pb2
from crm.profile.v1 import import_pb2, profile_service_pb2_grpc
from crm_cli import calls, import_report, imports, mapping_file, output, progress
from crm_cli.operations import SERVICES, summary, watch
from crm_cli.options import data_dir_option, output_option, target_option

EXIT_INTERRUPTED = 130


@click.group("import")
def import_group() -> None:
    """Bulk loads from files, through the services' own import RPCs.

    Profile has one file import, `customers`. Behaviour events have no file import: they arrive
    as a stream of batches (profile's IngestEvents), not as an uploaded file and an operation.
    """


@import_group.command("customers")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--mapping", "mapping_path", required=True, metavar="M.json",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Mapping file: how columns become customer fields (services/profile/mappings/).")
@click.option("--validate-only", is_flag=True, help="Check every row and report bad ones; write nothing.")
@click.option("--strict", is_flag=True,
              help="Any bad row fails the import and nothing is loaded (default: the mapping's mode, "
                   "else lenient: good rows load, bad rows are reported).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow the import to its end, or print its operation and return once it started.")
@click.option("--timeout", type=click.FloatRange(min=1), default=3600.0, show_default=True,
              help="Seconds to follow the import; it goes on in the service after that.")
@output_option("table", "json", "csv")
@target_option
@data_dir_option
def customers(file: Path, mapping_path: Path, validate_only: bool, strict: bool, wait: bool, timeout: float,
              output_format: str, target: str | None, data_dir: Path) -> None:
    """Upload FILE (CSV or Parquet) to profile, import it as customers, and report the bad rows.

    \b
    Example:
      crm import customers ../shared/data/Churn_Modelling.csv \\
          --mapping services/profile/mappings/churn_modelling.json --validate-only
      crm import customers people.csv --mapping people.json --strict --output csv > bad_rows.csv

    The upload and the import's progress are drawn on stderr; stdout has the report: a table, one
    JSON document (--output json) or the bad rows as CSV with a header (--output csv: line,
    column, field, reason, description). The attributes the mapping declares are created first
    when profile lacks them (even with --validate-only: the import cannot run without them).
    Needs an admin token (CRM_TOKEN; by default one is minted with the local secret).

    Exit status: 0 when the import succeeded (a lenient one may have skipped bad rows), 1 when a
    call or the import failed (a strict import with a bad row fails), 2 for bad arguments (a
    missing file, a mapping that is not JSON or not an import request).
    """
    try:
        mapping = mapping_file.load(mapping_path, data_file=file)
    except mapping_file.MappingFileError as exc:
        output.fail(str(exc), code=2)
    request = import_pb2.ImportCustomersRequest()
    request.CopyFrom(mapping.request)
    request.validate_only = validate_only
    request.request_id = str(uuid.uuid4())
    if strict:
        request.mode = import_pb2.IMPORT_MODE_STRICT
    elif not request.mode:
        request.mode = import_pb2.IMPORT_MODE_LENIENT
    started: list[operation_pb2.Operation] = []  # the operation, once there is one, for messages on interrupt
    try:
        operation = calls.run(_import(file, mapping, request, target=target or calls.service_target("profile"),
                                      metadata=calls.caller_metadata(data_dir), wait=wait, timeout=timeout,
                                      started=started))
    except (KeyboardInterrupt, TimeoutError) as stop:
        if not started:
            output.fail("stopped before the import started", code=EXIT_INTERRUPTED)
        name = started[0].name
        why = "stopped watching" if isinstance(stop, KeyboardInterrupt) else f"still running after {timeout:g} s"
        output.fail(f"{why}; {name} goes on in profile: `crm operations watch {name}` to follow it, "
                    f"`crm operations cancel {name}` to stop it",
                    code=EXIT_INTERRUPTED if isinstance(stop, KeyboardInterrupt) else 1)
    if not wait:
        _show_started(operation, output_format)
        return
    _show_report(operation, output_format)


async def _import(file: Path, mapping: mapping_file.MappingFile, request: import_pb2.ImportCustomersRequest, *,
                  target: str, metadata: calls.Metadata, wait: bool, timeout: float,
                  started: list[operation_pb2.Operation]) -> operation_pb2.Operation:
    status = output.console(stderr=True)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
        local = imports.inspect(file)
        with progress.upload_bar(status, file_name=file.name, size=local.size) as bar:
            upload = await imports.upload(stub, local, file_format=mapping.format, metadata=metadata,
                                          on_bytes=lambda sent: progress.advance(bar, sent))
        declared = await imports.declare_attributes(stub, mapping.attributes, metadata=metadata)
        if declared:
            status.print(f"declared attribute(s): {', '.join(declared)}")
        request.upload = upload.name
        operation = await imports.start(stub, request, metadata=metadata)
        started.append(operation)
        if not wait:
            return operation
        with progress.OperationBar(status, operation.name) as live:
            return await watch(SERVICES["profile"], stub, metadata=metadata, name=operation.name, seconds=timeout,
                               on_update=live.update)


def _show_started(operation: operation_pb2.Operation, output_format: str) -> None:
    if output_format == "json":
        output.print_json(summary(operation))
    else:
        click.echo(operation.name)


def _show_report(operation: operation_pb2.Operation, output_format: str) -> None:
    report: dict[str, Any] = import_report.as_dict(operation)
    if output_format == "json":
        output.print_json(report)
    elif output_format == "csv":
        click.echo(import_report.as_csv(operation), nl=False)
    else:
        screen = output.console()
        screen.print(import_report.summary_line(report), soft_wrap=True)
        if report["unmapped_columns"]:
            screen.print(f"unmapped columns (ignored): {', '.join(report['unmapped_columns'])}", soft_wrap=True)
        if report["bad_rows"]:
            screen.print(import_report.bad_row_table(report))
    if operation.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        message = report["error"] or f"{operation.name} ended {report['state']}"
        output.fail(message)
