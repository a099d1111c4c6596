"""Child processes: logs to files with a prefix, a death is noticed, a stubborn child is killed."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import pytest
from rich.console import Console

from crm_cli.supervisor import ChildExited, Interrupted, LogSink, Supervisor
from crmkit.testing import eventually

# Children that stay up: their long sleep is the behaviour under test, not a wait.
SLEEPER = "import time; print('up', flush=True); time.sleep(60)"
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
            "time.sleep(60)")


def make(tmp_path: Path, names: list[str]) -> tuple[Supervisor, Console]:
    console = Console(record=True, width=200, file=io.StringIO())
    return Supervisor(logs=LogSink(console=console, folder=tmp_path, names=names, stream=True)), console


def has_line(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


async def wait_for_line(path: Path, text: str) -> None:
    await eventually(lambda: asyncio.to_thread(has_line, path, text), seconds=10, what=f"{text!r} in {path}")


async def test_logs_are_prefixed_on_the_console_and_written_to_a_file(tmp_path: Path) -> None:
    supervisor, console = make(tmp_path, ["alpha"])
    child = await supervisor.run_to_end("alpha", [sys.executable, "-c", "print('hello'); print('world')"], {})
    assert child.process.returncode == 0
    await supervisor.stop(1)
    assert await asyncio.to_thread((tmp_path / "alpha.log").read_text) == "hello\nworld\n"
    assert "alpha | hello" in console.export_text()


async def test_a_dying_child_is_reported(tmp_path: Path) -> None:
    supervisor, _ = make(tmp_path, ["alpha", "beta"])
    await supervisor.start("alpha", [sys.executable, "-c", SLEEPER], {})
    await supervisor.start("beta", [sys.executable, "-c", "import sys; sys.exit(3)"], {})
    with pytest.raises(ChildExited) as raised:
        await supervisor.until(asyncio.Event().wait())  # a wait only an exit or a stop ends
    assert raised.value.child.name == "beta" and raised.value.child.process.returncode == 3
    assert await supervisor.stop(5) == []
    assert supervisor.running() == []


async def test_a_stop_request_interrupts_a_wait(tmp_path: Path) -> None:
    supervisor, _ = make(tmp_path, [])
    asyncio.get_running_loop().call_later(0.1, supervisor.request_stop)
    with pytest.raises(Interrupted):
        await supervisor.until(asyncio.Event().wait())  # a wait only an exit or a stop ends
    await supervisor.stop(1)


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    supervisor, _ = make(tmp_path, ["stubborn", "polite"])
    await supervisor.start("stubborn", [sys.executable, "-c", STUBBORN], {})
    await supervisor.start("polite", [sys.executable, "-c", SLEEPER], {})
    await wait_for_line(tmp_path / "stubborn.log", "up")
    assert await supervisor.stop(0.5) == ["stubborn"]
    assert supervisor.running() == []


async def test_a_second_stop_request_skips_the_grace_period(tmp_path: Path) -> None:
    supervisor, _ = make(tmp_path, ["stubborn"])
    await supervisor.start("stubborn", [sys.executable, "-c", STUBBORN], {})
    await wait_for_line(tmp_path / "stubborn.log", "up")
    supervisor.request_stop()
    supervisor.request_stop()
    # With an hour's grace, only the forced stop can finish before the guard.
    assert await asyncio.wait_for(supervisor.stop(3600), timeout=120) == ["stubborn"]
