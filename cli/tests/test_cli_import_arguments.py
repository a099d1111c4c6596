"""`crm import customers` refuses bad arguments with exit status 2 before calling anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crm_cli.main import cli

NO_SERVICE = {"CRM_PROFILE_PORT": "1", "CRM_JWT_SECRET": "unused-" + "x" * 32}


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["import", "customers", *args], env=NO_SERVICE)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text("id,name\n1,Li Wei\n")
    return path


def mapping(tmp_path: Path, content: str) -> str:
    path = tmp_path / "mapping.json"
    path.write_text(content)
    return str(path)


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run(str(tmp_path / "absent.csv"), "--mapping", mapping(tmp_path, "{}"))
    assert result.exit_code == 2
    assert "absent.csv" in result.stderr and "does not exist" in result.stderr


@pytest.mark.parametrize(("content", "says"), [
    ("{not json", "not JSON: Expecting property name enclosed in double quotes at line 1, column 2"),
    ("[1, 2]", "must be a JSON object"),
    ('{"request": {}}', "`request.mapping` is required"),
    ('{"request": {"mapping": {"columns": []}, "mode": "IMPORT_MODE_SLOPPY"}}',
     "`request` is not an ImportCustomersRequest"),
    ('{"format": "XLSX", "request": {"mapping": {}}}', "`format` must be one of IMPORT_FILE_FORMAT_CSV"),
    ('{"request": {"mapping": {}}, "attributes": [{"valueKind": 1}]}', "`attributes[0]` is not an AttributeDefinition"),
])
def test_a_bad_mapping_file_exits_2_naming_the_problem(content: str, says: str, data: Path, tmp_path: Path) -> None:
    result = run(str(data), "--mapping", mapping(tmp_path, content))
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.stderr.split())
    assert "mapping.json" in result.stderr and "Traceback" not in result.output


def test_the_format_comes_from_the_suffix_when_the_mapping_gives_none(tmp_path: Path) -> None:
    odd = tmp_path / "people.xlsx"
    odd.write_text("id\n1\n")
    result = run(str(odd), "--mapping", mapping(tmp_path, json.dumps({"request": {"mapping": {}}})))
    assert result.exit_code == 2
    assert "no `format`" in result.stderr


@pytest.mark.parametrize("command", [["import", "customers"], ["operations", "list"], ["operations", "watch"],
                                     ["operations", "cancel"]])
def test_every_new_command_has_an_example_in_its_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output and f"crm {' '.join(command)} " in result.output
