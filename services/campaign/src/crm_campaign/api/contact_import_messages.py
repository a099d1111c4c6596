"""Contact-history import messages <-> the contacts domain."""

from __future__ import annotations

import hashlib

from crm.campaign.v1 import contact_import_pb2 as pb
from crm_campaign.contacts.model import ColumnSpec, ContextType, ImportMode, ImportResult, ImportSpec
from crmkit.validation import Violations, unknown_enum


def spec_of(request: pb.ImportContactHistoryRequest, v: Violations) -> ImportSpec:
    """The request as an ImportSpec; enum numbers outside their types are violations here, every
    other rule is the domain's (contacts.rules.check_spec)."""
    mapping = request.mapping
    if not v.check(request.mode in ImportMode._value2member_map_, "mode",
                   unknown_enum(request.mode, "ContactImportMode")):
        mode = ImportMode.UNSPECIFIED
    else:
        mode = ImportMode(request.mode)
    columns = []
    for i, column in enumerate(mapping.columns):
        context_type = ContextType.UNSPECIFIED
        if v.check(column.context_type in ContextType._value2member_map_, f"mapping.columns[{i}].context_type",
                   unknown_enum(column.context_type, "ContactContextType")):
            context_type = ContextType(column.context_type)
        columns.append(ColumnSpec(column=column.column, field=column.field, context=column.context,
                                  context_type=context_type, value_map=tuple(sorted(column.value_map.items()))))
    source = mapping.customer_id.WhichOneof("source")
    options = request.csv_options
    return ImportSpec(
        file_name=request.file_name, source_system=request.source_system, mode=mode, columns=tuple(columns),
        offer_type=mapping.offer_type, customer_id_column=mapping.customer_id.column if source == "column" else "",
        line_number_ids=source == "line_number" and mapping.customer_id.line_number,
        id_prefix=mapping.customer_id.prefix, delimiter=options.delimiter or ",", quote=options.quote or '"',
        null_values=tuple(options.null_values))


def metadata_of(spec: ImportSpec, content: bytes, unmapped: list[str]) -> pb.ImportContactHistoryMetadata:
    return pb.ImportContactHistoryMetadata(
        file_name=spec.file_name, size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest(),
        mode=int(spec.mode), source_system=spec.source_system,  # type: ignore[arg-type]  # IntEnum as proto enum
        unmapped_columns=unmapped)


def result_to_proto(result: ImportResult) -> pb.ImportContactHistoryResult:
    return pb.ImportContactHistoryResult(
        inserted_count=result.inserted_count, unchanged_count=result.unchanged_count,
        bad_row_count=result.bad_row_count, bad_rows_truncated=result.bad_rows_truncated,
        bad_rows=[pb.ContactImportBadRow(line=b.line, column=b.column, field=b.field, reason=b.reason,
                                         description=b.description) for b in result.bad_rows])
