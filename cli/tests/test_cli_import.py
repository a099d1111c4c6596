"""`crm import customers` against a real profile process: upload, import, report, exit status."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from typing import Any

from crm_cli import workspace
from crmkit.testing import shared_data_dir

MAPPINGS = workspace.repository_root(Path(__file__).resolve()) / "services" / "profile" / "mappings"  # type: ignore[operator]
CHURN = "Churn_Modelling.csv"


def people_mapping(tmp_path: Path, prefix: str, **request: Any) -> str:
    """A small mapping: id, name, gender, customer type."""
    path = tmp_path / "people.json"
    path.write_text(json.dumps({"format": "IMPORT_FILE_FORMAT_CSV", "request": {
        "sourceSystem": "cli-test", **request,
        "mapping": {"customerId": {"column": "id", "prefix": prefix}, "columns": [
            {"column": "name", "field": "full_name"},
            {"column": "gender", "field": "gender", "valueMap": {"F": "FEMALE", "M": "MALE"}},
            {"column": "type", "field": "customer_type"}]}}}))
    return str(path)


def people_with_bad_rows(tmp_path: Path) -> str:
    path = tmp_path / "people.csv"
    rows = ["id,name,gender,type", "1,Li Wei,F,individual", "2,Ana Lima,Robot,individual", "3,,M,individual",
            "4,Tom Berg,M,individual"]  # lines 3 and 4 are bad
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def prefix() -> str:
    return f"C{uuid.uuid4().hex[:6].upper()}-"


def test_a_slice_of_the_churn_file_validates_then_loads(crm, tmp_path: Path) -> None:
    data = shared_data_dir(CHURN) / CHURN
    head = tmp_path / CHURN  # the first 199 customers: the same layout, a fast test
    head.write_text("".join(data.read_text().splitlines(keepends=True)[:200]))
    mapping = str(MAPPINGS / "churn_modelling.json")

    checked = crm("import", "customers", str(head), "--mapping", mapping, "--validate-only", "--output", "json")
    assert checked.exit_code == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["state"] == "SUCCEEDED" and report["validate_only"] is True
    assert (report["inserted"], report["bad_row_count"], report["bad_rows"]) == (199, 0, [])
    assert report["unmapped_columns"] == ["RowNumber"]
    assert crm("customers", "get", "CHURN-15634602").exit_code == 1  # validating wrote nothing

    loaded = crm("import", "customers", str(head), "--mapping", mapping)
    assert loaded.exit_code == 0, loaded.stderr
    assert "SUCCEEDED: 199 inserted, 0 updated, 0 unchanged, 0 bad row(s)" in loaded.stdout
    customer = json.loads(crm("customers", "get", "CHURN-15634602", "--json").stdout)
    assert customer["address"]["region_code"] == "FR" and customer["attributes"]["credit_score"]["int_value"] == "619"
    assert customer["attributes"]["age_years"]["int_value"] == "42"


def test_the_whole_churn_file_validates_clean(crm) -> None:
    result = crm("import", "customers", str(shared_data_dir(CHURN) / CHURN), "--mapping",
                 str(MAPPINGS / "churn_modelling.json"), "--validate-only", "--output", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["inserted"] + report["unchanged"] + report["updated"], report["bad_row_count"]) == (10_000, 0)


def test_bad_rows_are_listed_with_line_column_field_and_reason(crm, tmp_path: Path) -> None:
    p = prefix()
    result = crm("import", "customers", people_with_bad_rows(tmp_path), "--mapping", people_mapping(tmp_path, p))
    assert result.exit_code == 0, result.stderr  # lenient: the good rows load
    assert "2 inserted, 0 updated, 0 unchanged, 2 bad row(s)" in result.stdout
    table = [line.split("│")[1:-1] for line in result.stdout.splitlines() if line.startswith("│")]
    assert [(c[0].strip(), c[1].strip(), c[2].strip(), c[3].strip()) for c in table] == [
        ("3", "gender", "gender", "UNKNOWN_ENUM_VALUE"), ("4", "name", "full_name", "REQUIRED")]
    assert crm("customers", "get", f"{p}4").exit_code == 0


def test_csv_output_is_the_bad_rows_for_scripts(crm, tmp_path: Path) -> None:
    result = crm("import", "customers", people_with_bad_rows(tmp_path), "--mapping",
                 people_mapping(tmp_path, prefix()), "--validate-only", "--output", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["line"], r["field"], r["reason"]) for r in rows] == [
        ("3", "gender", "UNKNOWN_ENUM_VALUE"), ("4", "full_name", "REQUIRED")]
    assert all(r["description"] for r in rows)


def test_strict_loads_nothing_and_exits_1_with_the_report(crm, tmp_path: Path) -> None:
    p = prefix()
    result = crm("import", "customers", people_with_bad_rows(tmp_path), "--mapping", people_mapping(tmp_path, p),
                 "--strict", "--output", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["state"] == "FAILED" and report["mode"] == "STRICT" and report["inserted"] == 0
    assert [(b["line"], b["field"]) for b in report["bad_rows"]] == [(3, "gender"), (4, "full_name")]
    assert "INVALID_ARGUMENT [IMPORT_HAS_BAD_ROWS]" in result.stderr
    assert crm("customers", "get", f"{p}1").exit_code == 1


def test_a_mapping_the_service_refuses_is_reported_from_the_error_details(crm, tmp_path: Path) -> None:
    mapping = tmp_path / "wrong.json"
    mapping.write_text(json.dumps({"request": {"sourceSystem": "cli-test", "mapping": {
        "customerId": {"column": "id"}, "columns": [{"column": "surname", "field": "full_name"}]}}}))
    result = crm("import", "customers", people_with_bad_rows(tmp_path), "--mapping", str(mapping))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: INVALID_ARGUMENT")
    assert "mapping.columns[0].column:" in result.stderr and "Traceback" not in result.output
