"""Child processes: logs to files with a prefix, a death is noticed (even while its descendants
hold its log pipe), a stubborn child is killed, nothing a child started outlives it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from crm_cli.supervisor import Child, ChildExited, Interrupted, LogSink, Supervisor
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
    await eventually(lambda: asyncio.to_thread(has_line, path, text), seconds=60, what=f"{text!r} in {path}")


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


# A service that has run one job in the kit's operation worker pool, so that pool's spawned
# worker and multiprocessing's resource tracker exist, both holding the service's stdout.
WITH_WORKERS = """
import asyncio, os
from crmkit.operations import OperationRunner

async def main():
    runner = OperationRunner(operations=None, service="probe", error_domain="probe.crm", workers=1)
    print("worker", await runner.call(os.readlink, "/proc/self"), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
# A child that starts a grandchild that shares its stdout and ignores SIGTERM.
WITH_GRANDCHILD = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "print('grandchild ready', flush=True); time.sleep(120)"])
time.sleep(120)
"""


def group_members(pgid: int) -> set[int]:
    """Live (not zombie) processes in this process group."""
    members = set()
    for process in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.add(process.pid)
    return members


async def wait_until_gone(pgid: int, seconds: float = 15) -> None:
    await eventually(lambda: asyncio.to_thread(group_members, pgid), until=lambda left: not left, seconds=seconds,
                     what=f"every process of group {pgid} gone")


async def started_with_descendants(supervisor: Supervisor, tmp_path: Path, name: str, script: str,
                                   marker: str) -> Child:
    child = await supervisor.start(name, [sys.executable, "-c", script], os.environ)
    await wait_for_line(tmp_path / f"{name}.log", marker)
    assert len(await asyncio.to_thread(group_members, child.process.pid)) >= 2
    return child


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
async def test_a_killed_service_with_worker_processes_is_reported_and_its_workers_die(tmp_path: Path) -> None:
    supervisor, _ = make(tmp_path, ["profile"])
    child = await started_with_descendants(supervisor, tmp_path, "profile", WITH_WORKERS, "worker")
    os.kill(child.process.pid, signal.SIGKILL)

    with pytest.raises(ChildExited) as raised:
        await supervisor.until(asyncio.sleep(60))
    assert raised.value.child is child and child.process.returncode == -signal.SIGKILL
    await wait_until_gone(child.process.pid)
    assert await supervisor.stop(5) == []
    assert child.transport.is_closing()  # nothing left for the collector to close after the loop


async def test_a_grandchild_holding_the_log_pipe_neither_hides_a_death_nor_outlives_it(tmp_path: Path) -> None:
    supervisor, _ = make(tmp_path, ["parent"])
    child = await started_with_descendants(supervisor, tmp_path, "parent", WITH_GRANDCHILD, "grandchild ready")
    os.kill(child.process.pid, signal.SIGKILL)

    with pytest.raises(ChildExited):
        await supervisor.until(asyncio.sleep(60))
    await wait_until_gone(child.process.pid)
    await supervisor.stop(5)


async def test_a_stop_leaves_no_descendant_that_ignores_sigterm(tmp_path: Path) -> None:
    supervisor, _ = make(tmp_path, ["parent"])
    child = await started_with_descendants(supervisor, tmp_path, "parent", WITH_GRANDCHILD, "grandchild ready")
    assert await asyncio.wait_for(supervisor.stop(5), timeout=60) == []
    await wait_until_gone(child.process.pid)
