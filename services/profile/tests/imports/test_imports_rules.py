"""The pure parts of bulk import: request and upload rules, cell conversion, file reading. No database."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm_profile.customers import rules as customer_rules
from crm_profile.imports import conversion, reading, rules
from crm_profile.imports.conversion import ENUM_VALUES
from crm_profile.imports.model import (
    FORMAT_CSV,
    MODE_LENIENT,
    MODE_STRICT,
    ColumnRule,
    CsvOptions,
    IdRule,
    ImportResult,
    ImportSpec,
    UploadHeader,
)
from crmkit.errors import InvalidArgument, ResourceExhausted

TODAY = date(2026, 11, 23)


def spec(*columns: ColumnRule, **overrides: object) -> ImportSpec:
    fields: dict[str, object] = {
        "upload": "importUploads/00000000-0000-0000-0000-000000000001", "csv": CsvOptions(),
        "id_rule": IdRule(column="id"), "columns": columns or (ColumnRule("name", field="full_name"),),
        "mode": MODE_LENIENT, "max_bad_rows": 0, "validate_only": False, "source_system": "legacy-cif",
    }
    fields.update(overrides)
    return ImportSpec(**fields)  # type: ignore[arg-type]


def violations_of(found: object) -> dict[str, str]:
    try:
        found.raise_if_any()  # type: ignore[attr-defined]
    except InvalidArgument as error:
        return {v.field: v.description for v in error.violations}
    return {}


# --- uploads --------------------------------------------------------------------------------------


def test_an_upload_header_names_every_bad_field_at_once() -> None:
    with pytest.raises(InvalidArgument) as raised:
        rules.check_header(UploadHeader(file_name="", format=0, size_bytes=0, sha256="ABC"), max_bytes=10)
    assert {v.field for v in raised.value.violations} == {
        "header.file_name", "header.format", "header.size_bytes", "header.sha256"}


def test_a_file_over_the_limit_or_the_free_area_is_resource_exhausted() -> None:
    good = UploadHeader(file_name="a.csv", format=FORMAT_CSV, size_bytes=11, sha256="0" * 64)
    with pytest.raises(ResourceExhausted) as raised:
        rules.check_header(good, max_bytes=10)
    assert raised.value.reason == "UPLOAD_TOO_LARGE"
    with pytest.raises(ResourceExhausted) as raised:
        rules.check_header(good, max_bytes=100, area_free=5)
    assert raised.value.reason == "UPLOAD_AREA_FULL"
    rules.check_header(good, max_bytes=100, area_free=11)


def test_chunks_must_fit_the_declared_size_and_digest() -> None:
    with pytest.raises(InvalidArgument):
        rules.check_chunk(b"", received=0, declared=10)
    with pytest.raises(InvalidArgument) as raised:
        rules.check_chunk(b"x" * 5, received=8, declared=10)
    assert raised.value.violations[0].field == "header.size_bytes"
    with pytest.raises(InvalidArgument) as raised:
        rules.check_complete(received=9, declared=10, sha256="a", declared_sha256="a")
    assert raised.value.violations[0].field == "header.size_bytes"
    with pytest.raises(InvalidArgument) as raised:
        rules.check_complete(received=10, declared=10, sha256="a", declared_sha256="b")
    assert raised.value.violations[0].field == "header.sha256"


# --- import requests ------------------------------------------------------------------------------


def test_a_good_request_has_no_violations() -> None:
    good = spec(ColumnRule("name", field="full_name"), ColumnRule("born", field="birth_date", date_format="%d/%m/%Y"),
                ColumnRule("sex", field="gender", default_value="OTHER"), ColumnRule("score", attribute="credit_score"),
                ColumnRule("line1", field="address.address_lines"), ColumnRule("line2", field="address.address_lines"))
    assert violations_of(rules.check_request(good, enum_values=ENUM_VALUES)) == {}


def test_a_bad_request_names_every_field_at_once() -> None:
    bad = spec(
        ColumnRule("", field="full_name"),
        ColumnRule("x", field="shoe_size"),
        ColumnRule("y", field="full_name"),
        ColumnRule("z"),
        ColumnRule("g", field="gender", default_value="ROBOT"),
        ColumnRule("o", field="occupation", date_format="%Y"),
        ColumnRule("a", attribute="Bad-Id"),
        csv=CsvOptions(delimiter=";;", quote="", encoding="EBCDIC", null_values=tuple("abcdefghijk")),
        id_rule=IdRule(prefix="way too long a prefix!"), mode=0, max_bad_rows=-1, source_system="Legacy CIF",
    )
    found = violations_of(rules.check_request(bad, enum_values=ENUM_VALUES))
    assert set(found) == {
        "csv_options.delimiter", "csv_options.quote", "csv_options.encoding", "csv_options.null_values",
        "mapping.customer_id", "mapping.customer_id.prefix", "mapping.columns[0].column", "mapping.columns[1].field",
        "mapping.columns[2].field", "mapping.columns[3]", "mapping.columns[4].default_value",
        "mapping.columns[5].date_format", "mapping.columns[6].attribute", "mode", "max_bad_rows", "source_system"}
    assert "mapping.columns[0]" in found["mapping.columns[2].field"]


def test_max_bad_rows_is_for_lenient_imports_only() -> None:
    found = violations_of(rules.check_request(spec(mode=MODE_STRICT, max_bad_rows=5), enum_values=ENUM_VALUES))
    assert set(found) == {"max_bad_rows"}


def test_mapped_columns_must_exist_and_the_rest_are_listed_as_unmapped() -> None:
    mapping = spec(ColumnRule("name", field="full_name"), ColumnRule("nope", field="email"), id_rule=IdRule("ident"))
    found = violations_of(rules.check_columns(mapping, ["id", "name", "extra"]))
    assert set(found) == {"mapping.customer_id.column", "mapping.columns[1].column"}
    assert rules.unmapped_columns(mapping, ["ident", "name", "extra", "more"]) == ["extra", "more"]


def test_unknown_attributes_are_named_by_their_mapping_entry() -> None:
    mapping = spec(ColumnRule("a", attribute="credit_score"), ColumnRule("b", attribute="tenure_years"))
    assert rules.unknown_attributes(mapping, {"credit_score"}) == [("mapping.columns[1].attribute", "tenure_years")]


# --- rows and outcomes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("description", "given", "reason"), [
    ("is required", False, "REQUIRED"),
    ("is required: an ISO 3166-1 alpha-2 code, e.g. CN", True, "INVALID_FORMAT"),
    ("must be between 1900-01-01 and today", True, "OUT_OF_RANGE"),
    ("must be at most 200 characters", True, "OUT_OF_RANGE"),
    ("must not be before onboarded_on", True, "OUT_OF_RANGE"),
    ("is not a known Gender", True, "UNKNOWN_ENUM_VALUE"),
    ("7 is not a known Gender value", True, "UNKNOWN_ENUM_VALUE"),
    ("must be at least 0", True, "OUT_OF_RANGE"),
    ("must be in E.164 form: + then 8 to 15 digits, e.g. +8613812345678", True, "INVALID_FORMAT"),
])
def test_customer_rule_violations_read_as_bad_row_reasons(description: str, given: bool, reason: str) -> None:
    assert rules.reason_for(description, given=given) == reason


def test_the_outcome_follows_mode_limit_and_validate_only() -> None:
    assert rules.outcome(spec(mode=MODE_STRICT), bad_row_count=1) is rules.Outcome.BAD_ROWS
    assert rules.outcome(spec(mode=MODE_STRICT), bad_row_count=0) is rules.Outcome.WRITE
    assert rules.outcome(spec(max_bad_rows=2), bad_row_count=3) is rules.Outcome.TOO_MANY_BAD_ROWS
    assert rules.outcome(spec(max_bad_rows=2), bad_row_count=2) is rules.Outcome.WRITE
    assert rules.outcome(spec(validate_only=True), bad_row_count=5) is rules.Outcome.DRY_RUN
    failed = rules.failed_result(ImportResult(inserted=3, updated=2, unchanged=1, bad_row_count=4))
    assert (failed.inserted, failed.updated, failed.unchanged, failed.bad_row_count) == (0, 0, 0, 4)


def test_bad_row_entries_are_cut_at_ten_thousand() -> None:
    from crm_profile.imports.model import BadRow

    kept, truncated = rules.first_entries(BadRow(n, "", "", "REQUIRED", "") for n in range(10_001))
    assert len(kept) == 10_000 and truncated
    kept, truncated = rules.first_entries(BadRow(n, "", "", "REQUIRED", "") for n in range(10))
    assert len(kept) == 10 and not truncated


# --- cell conversion --------------------------------------------------------------------------------


def mapper(*columns: ColumnRule, header: list[str], **overrides: object) -> conversion.RowMapper:
    return conversion.RowMapper(spec(*columns, **overrides), header, enum_values=ENUM_VALUES)


def test_cells_are_trimmed_mapped_defaulted_and_converted() -> None:
    m = mapper(ColumnRule("sex", field="gender", value_map={"F": "FEMALE", "?": ""}, default_value="OTHER"),
               ColumnRule("born", field="birth_date", date_format="%d/%m/%Y"),
               ColumnRule("kyc", field="kyc_status"),
               ColumnRule("job", field="occupation"),
               header=["id", "sex", "born", "kyc", "job"], csv=CsvOptions(null_values=("unknown",)))
    row = m.read(2, ["  C1 ", " F ", "14/03/1985", "kyc_status_verified", "unknown"])
    assert row.customer_id == "C1" and not row.problems
    assert row.values == {"gender": 1, "birth_date": date(1985, 3, 14), "kyc_status": 2}
    assert m.read(3, ["C2", "?", "", "VERIFIED", " teacher "]).values == {
        "gender": 3, "kyc_status": 2, "occupation": "teacher"}


def test_cells_that_cannot_be_converted_are_reported_without_their_value() -> None:
    m = mapper(ColumnRule("sex", field="gender"), ColumnRule("born", field="birth_date"),
               header=["id", "sex", "born"])
    row = m.read(7, ["C1", "Robot", "1985-02-30"])
    assert [(p.line, p.column, p.field, p.reason) for p in row.problems] == [
        (7, "sex", "gender", "UNKNOWN_ENUM_VALUE"), (7, "born", "birth_date", "INVALID_DATE")]
    assert all("Robot" not in p.description and "1985" not in p.description for p in row.problems)
    assert conversion.failed_targets(row) == {"gender", "birth_date"}


def test_line_number_ids_take_the_prefix_and_address_lines_append_in_order() -> None:
    m = mapper(ColumnRule("l1", field="address.address_lines"), ColumnRule("l2", field="address.address_lines"),
               ColumnRule("cc", field="address.region_code"), header=["l1", "l2", "cc"],
               id_rule=IdRule(line_number=True, prefix="BANK-"))
    row = m.read(42, ["1 Main St", "Flat 2", "PT"])
    customer = m.new_customer(row, today=TODAY, source_system="uci")
    assert customer.customer_id == "BANK-42"
    assert customer.address == {"addressLines": ["1 Main St", "Flat 2"], "regionCode": "PT"}
    assert customer.onboarded_on == TODAY and customer.source_system == "uci"


def test_a_row_updates_only_the_fields_it_has_values_for() -> None:
    m = mapper(ColumnRule("job", field="occupation"), ColumnRule("city", field="address.locality"),
               ColumnRule("phone", field="mobile_phone"), header=["id", "job", "city", "phone"])
    current = m.new_customer(m.read(2, ["C1", "teacher", "Beijing", "+8613812345678"]), today=TODAY,
                             source_system="a")
    current.address["regionCode"] = "CN"
    updated = m.updated_customer(m.read(3, ["C1", "engineer", "", ""]), current)
    assert updated.occupation == "engineer" and updated.mobile_phone == "+8613812345678"
    assert updated.address == {"locality": "Beijing", "regionCode": "CN"}
    assert not conversion.same_customer(updated, current)
    assert conversion.same_customer(m.updated_customer(m.read(4, ["C1", "teacher", "", ""]), current), current)


def test_imported_customers_are_checked_by_the_create_customer_rules() -> None:
    m = mapper(ColumnRule("name", field="full_name"), ColumnRule("phone", field="mobile_phone"),
               header=["id", "name", "phone"])
    row = m.read(2, ["C1", "Li Wei", "12345"])
    customer = customer_rules.normalise(m.new_customer(row, today=TODAY, source_system="a"))
    found = violations_of(customer_rules.validate(customer, today=TODAY))
    entries = rules.bad_rows(2, [__import__("crmkit.errors").errors.FieldViolation(f, d) for f, d in found.items()],
                             column_of=m.column_of, given=row.values)
    by_field = {e.field: (e.column, e.reason) for e in entries}
    assert by_field == {"customer_type": ("", "REQUIRED"), "mobile_phone": ("phone", "INVALID_FORMAT")}


# --- reading files ----------------------------------------------------------------------------------


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return path


def all_rows(path: Path, options: CsvOptions, parts: int) -> tuple[list[str], list[reading.Row]]:
    layout = reading.plan_csv(path, options, parts=parts, min_part_bytes=1)
    found = [row for part in layout.parts
             for row in reading.csv_rows(path, part, options, columns=len(layout.columns))]
    return layout.columns, found


def test_csv_rows_carry_the_physical_line_they_start_on(tmp_path: Path) -> None:
    data = b'id;name;note\n1;"Li; Wei";"two\nlines"\n\n2;Wang;x\n3;bad\n4;"open;x\n5;Zhao;y\n'
    columns, rows = all_rows(write(tmp_path, data), CsvOptions(delimiter=";"), parts=1)
    assert columns == ["id", "name", "note"]
    assert [(r.line, list(r.cells) if r.cells else None, bool(r.malformed)) for r in rows][:3] == [
        (2, ["1", "Li; Wei", "two\nlines"], False), (5, ["2", "Wang", "x"], False), (6, None, True)]
    assert rows[2].malformed == "has 2 columns where the header has 3"
    assert rows[3].line == 7 and rows[3].cells is None  # an unterminated quote swallows the rest


def test_splitting_a_file_never_cuts_a_quoted_line_break(tmp_path: Path) -> None:
    lines = ["id,note"] + [f'{n},"line {n}\nsecond ""half"" {n}"' if n % 3 == 0 else f"{n},plain {n}"
                           for n in range(1, 400)]
    path = write(tmp_path, ("\n".join(lines) + "\n").encode())
    _, whole = all_rows(path, CsvOptions(), parts=1)
    _, split = all_rows(path, CsvOptions(), parts=7)
    assert len(reading.plan_csv(path, CsvOptions(), parts=7, min_part_bytes=1).parts) > 1
    assert [(r.line, list(r.cells or ())) for r in split] == [(r.line, list(r.cells or ())) for r in whole]
    assert len(whole) == 399 and all(r.cells is not None for r in whole)


def test_undecodable_lines_are_malformed_rows_and_other_encodings_read(tmp_path: Path) -> None:
    data = "id,name\n1,王芳\n".encode("gb18030") + b"2,\xff\xfe\n3,ok\n"
    _, rows = all_rows(write(tmp_path, data), CsvOptions(encoding="GB18030"), parts=1)
    assert rows[0].cells == ["1", "王芳"]
    assert rows[1].cells is None and "GB18030" in rows[1].malformed
    assert rows[2].cells == ["3", "ok"]


def test_the_header_is_read_from_the_first_bytes_only(tmp_path: Path) -> None:
    assert reading.csv_columns(b'"a";"b"\n1;2\n3;', CsvOptions(delimiter=";"), whole_file=False)[0] == ["a", "b"]
    assert reading.csv_columns(b"\xef\xbb\xbfa,b\n", CsvOptions(), whole_file=True)[0] == ["a", "b"]
    assert reading.csv_columns(b"x,y,z\n", CsvOptions(no_header=True), whole_file=True)[0] == ["#1", "#2", "#3"]
    with pytest.raises(reading.UnreadableFile):
        reading.csv_columns(b"a,b,c", CsvOptions(), whole_file=False)


def test_parquet_columns_come_from_the_footer_and_rows_from_row_groups(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2, 3, 4, 5], "name": ["a", None, "c", "d", "e"],
                      "born": [date(1990, 1, n) for n in range(1, 6)], "vip": [True, False, True, False, True]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=2)
    data = buffer.getvalue()
    assert reading.parquet_columns(data[-reading.footer_length(data[-8:]):]) == ["id", "name", "born", "vip"]
    path = write(tmp_path, data)
    layout = reading.plan_parquet(path, parts=2)
    assert layout.estimated_rows == 5 and len(layout.parts) == 2
    rows = [r for part in layout.parts for r in reading.parquet_rows(path, part, columns=["id", "born", "vip", "name"])]
    assert [r.line for r in rows] == [1, 2, 3, 4, 5]
    assert list(rows[1].cells or ()) == ["2", date(1990, 1, 2), "false", None]
    with pytest.raises(reading.UnreadableFile):
        reading.parquet_columns(b"not parquet at all")
