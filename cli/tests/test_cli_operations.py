"""`crm operations list|watch|cancel` against a real profile process."""

from __future__ import annotations

import json
import uuid
from pathlib import Path


def start_import(crm, tmp_path: Path, rows: int) -> str:  # type: ignore[no-untyped-def]
    """An import of `rows` new customers, started without waiting; its operation's name."""
    p = f"O{uuid.uuid4().hex[:6].upper()}-"
    data = tmp_path / "many.csv"
    data.write_text("id,name,type\n" + "".join(f"{n},Customer {n},individual\n" for n in range(rows)))
    mapping = tmp_path / "many.json"
    mapping.write_text(json.dumps({"request": {"sourceSystem": "cli-test", "mapping": {
        "customerId": {"column": "id", "prefix": p},
        "columns": [{"column": "name", "field": "full_name"}, {"column": "type", "field": "customer_type"}]}}}))
    started = crm("import", "customers", str(data), "--mapping", str(mapping), "--no-wait", "--output", "json")
    assert started.exit_code == 0, started.stderr
    operation = json.loads(started.stdout)
    assert operation["kind"] == "profile.import" and operation["state"] in ("PENDING", "RUNNING")
    return str(operation["name"])


def test_watch_follows_an_import_to_its_end_list_filters_and_it_cannot_be_cancelled_after(crm, tmp_path: Path) -> None:
    name = start_import(crm, tmp_path, rows=300)

    watched = crm("operations", "watch", name.removeprefix("operations/"), "--output", "json")
    assert watched.exit_code == 0, watched.stderr
    final = json.loads(watched.stdout)
    assert (final["name"], final["state"], final["done"], final["total"]) == (name, "SUCCEEDED", 300, 300)
    assert final["import"]["inserted"] == 300

    listed = crm("operations", "list", "--state", "succeeded", "--kind", "profile.import", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    operations = json.loads(listed.stdout)
    assert name in [o["name"] for o in operations] and {o["state"] for o in operations} == {"SUCCEEDED"}
    assert crm("operations", "list", "--state", "cancelled", "--output", "json").stdout.count(name) == 0
    table = crm("operations", "list", "--limit", "1")
    assert table.exit_code == 0 and name in table.stdout  # newest first

    too_late = crm("operations", "cancel", name)
    assert too_late.exit_code == 1
    assert "FAILED_PRECONDITION [OPERATION_FINISHED]" in too_late.stderr and "Traceback" not in too_late.output


def test_cancel_stops_an_import_and_watch_exits_1(crm, tmp_path: Path) -> None:
    name = start_import(crm, tmp_path, rows=40_000)  # long enough to still be running when cancelled

    cancelled = crm("operations", "cancel", name, "--output", "json")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] in ("PENDING", "RUNNING", "CANCELLED")

    watched = crm("operations", "watch", name, "--output", "json")
    assert watched.exit_code == 1
    assert json.loads(watched.stdout)["state"] == "CANCELLED"
    assert f"{name} ended CANCELLED" in watched.stderr

    again = crm("operations", "cancel", name, "--output", "json")  # a safe retry
    assert again.exit_code == 0 and json.loads(again.stdout)["state"] == "CANCELLED"


def test_an_unknown_operation_is_not_found(crm) -> None:
    result = crm("operations", "watch", str(uuid.uuid4()))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: NOT_FOUND [OPERATION_NOT_FOUND]")
