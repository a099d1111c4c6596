"""Short readable lines for a person watching `crm run`, from the children's JSON log lines.

`{"timestamp": "2026-12-07T05:10:00.123Z", "level": "info", "event": "rpc", "method": "GetCustomer",
"code": "OK", ...}` becomes `05:10:00 INFO  rpc method=GetCustomer code=OK ...`. A line that is
not a JSON object (a traceback, a library's print) is shown as it is. The files under `.crm/logs/`
keep the JSON; only the terminal gets these.
"""

from __future__ import annotations

import json
from typing import Any

# Keys shown elsewhere in the line, or only noise for a person reading along.
HIDDEN = {"timestamp", "level", "event", "logger", "service", "component", "pid"}
MAX_FIELDS = 6
MAX_VALUE = 60


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 1] + "…"


def readable(line: str) -> str:
    """One JSON log line as `HH:MM:SS LEVEL event key=value ...` (at most MAX_FIELDS fields)."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    stamp = str(record.get("timestamp", ""))
    clock = stamp[11:19] if len(stamp) >= 19 else stamp
    level = str(record.get("level", "")).upper()
    fields = [(k, v) for k, v in record.items() if k not in HIDDEN and v not in (None, "", [], {})]
    shown = " ".join(f"{k}={_value(v)}" for k, v in fields[:MAX_FIELDS])
    more = f" (+{len(fields) - MAX_FIELDS})" if len(fields) > MAX_FIELDS else ""
    parts = [p for p in (clock, f"{level:<5}" if level else "", str(record.get("event", "")), shown + more) if p]
    return " ".join(parts)
