"""What no reviewer should have to spot: merge-conflict markers left in any tracked text file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^(<{7}|>{7}) ", re.MULTILINE)
TEXT = (".py", ".md", ".proto", ".yaml", ".yml", ".toml", ".json", ".txt", ".cfg", ".ini", ".cel", ".sql")


def test_no_tracked_file_holds_a_merge_conflict_marker() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    marked = [name for name in tracked.splitlines() if name.endswith(TEXT) and (ROOT / name).is_file()
              and MARKER.search((ROOT / name).read_text(encoding="utf-8", errors="replace"))]
    assert not marked, f"merge-conflict markers in {marked}"
