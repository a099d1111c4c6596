"""`crm run --only profile` (and `profile,feedback`) as a real process: ready, serving demo data,
the demo complaints and survey answers filed when feedback runs, and a clean Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest

from crm.common.v1 import audit_pb2
from crm.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from crm_cli import postgres, synthetic_bank

READY = re.compile(r"CRM platform ready in [0-9.]+ s")
TOKEN_LINE = re.compile(r"^\s*(?P<role>[a-z_]+)\s+(?P<token>eyJ[\w-]+\.[\w-]+\.[\w-]+)\s*$")
# Generous: this checks behaviour, not speed (the 60 s goal is `crm run`'s default --timeout).
START_TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Output:
    """The process's merged output, read on a thread so the pipe never fills up."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            match = pattern.search(line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern.pattern!r}; output so far:\n" + "\n".join(self.lines))

    def tokens_by_role(self, count: int, timeout: float) -> dict[str, str]:
        found: dict[str, str] = {}
        while len(found) < count:
            match = self.wait_for(TOKEN_LINE, timeout)
            found[match["role"]] = match["token"]
        return found

    def rest(self, timeout: float) -> str:
        self._thread.join(timeout)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "\n".join(self.lines)


def children_of(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


@pytest.fixture
def crm_run(pg_home: Path, request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], Output, Path, int]]:
    """`crm run --only profile`, or the components a test names by indirect parametrisation."""
    only = getattr(request, "param", "profile")
    data_dir = pg_home / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"CRM_PROFILE_DATABASE_URL", "CRM_FEEDBACK_DATABASE_URL", "CRM_JWT_SECRET", "CRM_TOKEN",
                        "CRM_DATA_DIR"}}
    env |= {"CRM_PROFILE_PORT": str(port), "CRM_FEEDBACK_PORT": str(free_port()), "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_cli", "run", "--only", only, "--data-dir", str(data_dir),
         "--logs", "file", "--timeout", str(START_TIMEOUT), "--demo-customers", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    output = Output(process.stdout)
    try:
        yield process, output, data_dir, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        pid_file = data_dir / "pgdata" / "postmaster.pid"
        if pid_file.exists():  # a failed run must not leave a server behind
            pid = int(pid_file.read_text().split()[0])
            if postgres.is_running(pid):
                os.kill(pid, signal.SIGQUIT)


@pytest.mark.slow
def test_crm_run_serves_demo_customers_and_stops_cleanly_on_ctrl_c(
    crm_run: tuple[subprocess.Popen[str], Output, Path, int],
) -> None:
    process, output, data_dir, port = crm_run
    output.wait_for(READY, START_TIMEOUT + 30)
    tokens = output.tokens_by_role(7, timeout=30)
    postmaster_pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    assert postgres.is_running(postmaster_pid)

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
        reply = stub.GetCustomer(
            profile_service_pb2.GetCustomerRequest(
                name="customers/DEMO0001",
                audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)),
            metadata=(("authorization", f"Bearer {tokens['admin']}"),), timeout=10)
    assert reply.customer.customer_id == "DEMO0001"
    assert "full_name" in reply.customer.masked_fields  # an admin sees personal data masked

    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0, output.rest(5)
    text = output.rest(5)
    assert "PostgreSQL stopped" in text
    assert not postgres.is_running(postmaster_pid)
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()
    assert (data_dir / "secrets.env").stat().st_mode & 0o077 == 0
    assert "migrated" in (data_dir / "logs" / "profile.log").read_text()


@pytest.mark.slow
def test_crm_run_stops_everything_and_fails_when_a_service_dies(
    crm_run: tuple[subprocess.Popen[str], Output, Path, int],
) -> None:
    process, output, data_dir, _ = crm_run
    output.wait_for(READY, START_TIMEOUT + 30)
    postmaster_pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    [profile] = [p for p in children_of(process.pid) if "crm_profile" in " ".join(p.cmdline())]
    profile.kill()

    assert process.wait(60) == 1, output.rest(5)
    text = output.rest(5)
    assert re.search(r"profile exited with code -?\d+; stopping everything", text), text
    assert not postgres.is_running(postmaster_pid)
    assert "Traceback" not in text, text


@pytest.mark.slow
@pytest.mark.parametrize("crm_run", ["profile,feedback"], indirect=True)
def test_crm_run_with_feedback_files_the_demo_complaints_and_survey_answers(
    crm_run: tuple[subprocess.Popen[str], Output, Path, int],
) -> None:
    process, output, _, _ = crm_run
    bank = list(synthetic_bank.generate(40))
    complaints = sum(len(who.complaints) for who in bank)
    answers = sum(len(who.survey_answers) for who in bank)
    assert complaints > 0 and answers > 0
    filed = output.wait_for(re.compile(r"demo feedback: (?P<complaints>\d+) complaints .*, (?P<answers>\d+) survey "
                                       r"answers"), START_TIMEOUT + 30)
    assert (int(filed["complaints"]), int(filed["answers"])) == (complaints, answers), "\n".join(output.lines)
    output.wait_for(READY, 60)
    assert not any("demo" in line and "refused" in line for line in output.lines), "\n".join(output.lines)
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0, output.rest(5)
