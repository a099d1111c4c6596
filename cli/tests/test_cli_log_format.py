"""`crm run`'s readable log lines: a child's JSON line becomes `time LEVEL event key=value`, other
lines pass through, and the log file keeps the JSON while the terminal gets the short line."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from crm_cli.log_format import MAX_FIELDS, readable
from crm_cli.supervisor import LogSink

LINE = json.dumps({"timestamp": "2026-12-07T05:10:00.123456Z", "level": "info", "event": "rpc finished",
                   "logger": "crmkit.server", "method": "/crm.profile.v1.ProfileService/GetCustomer",
                   "code": "OK", "duration_ms": 4.2})


def test_a_json_line_becomes_a_short_readable_line() -> None:
    assert readable(LINE) == ("05:10:00 INFO  rpc finished method=/crm.profile.v1.ProfileService/GetCustomer "
                              "code=OK duration_ms=4.2")


def test_other_lines_pass_through_and_long_records_are_cut() -> None:
    assert readable("Traceback (most recent call last):") == "Traceback (most recent call last):"
    assert readable("[1, 2]") == "[1, 2]"
    many = json.dumps({"level": "warning", "event": "busy", **{f"k{i}": "x" * 100 for i in range(MAX_FIELDS + 2)}})
    shown = readable(many)
    assert shown.startswith("WARNING busy k0=") and shown.endswith("(+2)") and "x" * 100 not in shown


def test_the_file_keeps_json_while_the_terminal_gets_text(tmp_path: Path) -> None:
    screen = io.StringIO()
    sink = LogSink(console=Console(file=screen, width=300), folder=tmp_path, names=["profile"], stream=True,
                   readable=True)
    sink.write("profile", LINE)
    sink.close()
    assert json.loads((tmp_path / "profile.log").read_text(encoding="utf-8")) == json.loads(LINE)
    assert "profile | 05:10:00 INFO  rpc finished" in screen.getvalue() and "{" not in screen.getvalue()
    raw = io.StringIO()
    sink = LogSink(console=Console(file=raw, width=300), folder=tmp_path, names=["profile"], stream=True)
    sink.write("profile", LINE)
    sink.close()
    assert '"event": "rpc finished"' in raw.getvalue()
