"""An import's outcome for people (tables) and scripts (JSON, CSV): counts and bad rows."""

from __future__ import annotations

import csv
import io
from typing import Any

from rich.table import Table

from crm.common.v1 import operation_pb2
from crm.profile.v1 import import_pb2
from crm_cli import imports, output
from crm_cli.operations import state_name

BAD_ROW_COLUMNS = ("line", "column", "field", "reason", "description")


def bad_rows(result: import_pb2.ImportCustomersResult | None) -> list[dict[str, Any]]:
    return [{"line": b.line, "column": b.column, "field": b.field, "reason": b.reason,
             "description": b.description} for b in (result.bad_rows if result else ())]


def as_dict(operation: operation_pb2.Operation) -> dict[str, Any]:
    """Everything a script needs, with plain JSON numbers (proto JSON would quote int64s)."""
    result = imports.result_of(operation)
    described = imports.metadata_of(operation)
    return {
        "operation": operation.name,
        "state": state_name(operation.state),
        "validate_only": bool(described and described.validate_only),
        "mode": import_pb2.ImportMode.Name(described.mode).removeprefix("IMPORT_MODE_") if described else None,
        "inserted": result.inserted_count if result else 0,
        "updated": result.updated_count if result else 0,
        "unchanged": result.unchanged_count if result else 0,
        "bad_row_count": result.bad_row_count if result else 0,
        "bad_rows": bad_rows(result),
        "bad_rows_truncated": bool(result and result.bad_rows_truncated),
        "unmapped_columns": list(described.unmapped_columns) if described else [],
        "error": output.describe_status(operation.error) if operation.HasField("error") else None,
    }


def as_csv(operation: operation_pb2.Operation) -> str:
    """The bad rows only, one per line, with a header line (none but the header when clean)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=BAD_ROW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(bad_rows(imports.result_of(operation)))
    return buffer.getvalue()


def summary_line(report: dict[str, Any]) -> str:
    line = (f"{report['operation']} {report['state']}: {report['inserted']} inserted, {report['updated']} updated, "
            f"{report['unchanged']} unchanged, {report['bad_row_count']} bad row(s)")
    if report["validate_only"]:
        line += " (validate only: nothing was written; the counts say what an import would do)"
    return line


def bad_row_table(report: dict[str, Any]) -> Table:
    title = f"Bad rows ({len(report['bad_rows'])}{' shown, more were cut' if report['bad_rows_truncated'] else ''})"
    table = Table(title=title, show_header=True, header_style="bold")
    for column in BAD_ROW_COLUMNS:
        table.add_column(column.capitalize(), justify="right" if column == "line" else "left",
                         overflow="fold", style="cyan" if column == "field" else None)
    for row in report["bad_rows"]:
        table.add_row(*(str(row[c]) for c in BAD_ROW_COLUMNS))
    return table
