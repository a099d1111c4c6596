"""Cross-service fixtures: an OTLP trace collector in the test process, and real service processes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

import crm_profile
from crm.common.v1 import operation_pb2
from crm.profile.v1 import attribute_pb2, import_pb2, operations_pb2
from crmkit.testing import TEST_JWT_SECRET, eventually, telemetry_env


def profile_env(database_url: str, port: int) -> dict[str, str]:
    return {
        "CRM_ENV": "test",
        "CRM_JWT_SECRET": TEST_JWT_SECRET,
        "CRM_PROFILE_DATABASE_URL": database_url,
        "CRM_PROFILE_PORT": str(port),
        "CRM_HOST": "127.0.0.1",
        "CRM_PROFILE_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "CRM_PROFILE_ACTIVE_KEY_ID": "k1",
        "CRM_PROFILE_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
    }


class Process:
    """A real child process whose stdout (JSON log lines) goes to a file the test can read."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(args, env={**os.environ, **env}, stdout=self._log,
                                      stderr=subprocess.STDOUT)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()

    def stop(self, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class Launcher:
    """Starts real processes for one test and stops them all (in reverse order) afterwards."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, module: str, env: dict[str, str], *args: str) -> Process:
        process = Process(name, [sys.executable, "-m", module, *args], env, self.log_dir)
        self.started.append(process)
        return process

    def run(self, module: str, env: dict[str, str], *args: str) -> None:
        """Run a one-shot command (e.g. `migrate`) to completion."""
        subprocess.run([sys.executable, "-m", module, *args], env={**os.environ, **env},
                       check=True, capture_output=True, timeout=120)

    async def wait_serving(self, target: str, process: Process, timeout: float = 30) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            async def serving() -> bool:
                if process.popen.poll() is not None:
                    pytest.fail(f"{process.name} exited: {process.log_lines()[-20:]}")
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                except grpc.aio.AioRpcError:
                    return False
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, process.log_lines()[-20:]
                return True

            await eventually(serving, seconds=timeout, interval=0.1, what=f"{process.name} SERVING")

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A failed cross-process test says little by itself (an INTERNAL from another process): its
    report, which CI prints, gets each process's warnings, errors and tracebacks."""
    report = yield
    started = getattr(item, "funcargs", {}).get("launcher")
    if report.when == "call" and report.failed and isinstance(started, Launcher):
        for process in started.started:
            notable = [line for line in process.log_lines()
                       if '"level": "error"' in line or '"level": "warning"' in line or not line.startswith("{")]
            report.sections.append((f"{process.name} log: {len(notable)} notable lines, the last 40",
                                    "\n".join(notable[-40:])))
    return report


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    started = Launcher(tmp_path)
    yield started
    started.stop_all()


def _profile_mapping(name: str) -> dict[str, Any]:
    """One of the mappings profile ships (services/profile/mappings)."""
    mapping: dict[str, Any] = json.loads(
        (Path(crm_profile.__file__).resolve().parents[2] / "mappings" / name).read_text())
    return mapping


async def _upload_chunks(data: bytes, file_name: str) -> AsyncIterator[import_pb2.UploadImportFileRequest]:
    yield import_pb2.UploadImportFileRequest(header=import_pb2.UploadImportFileHeader(
        file_name=file_name, format=import_pb2.IMPORT_FILE_FORMAT_CSV, size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest()))
    for start in range(0, len(data), 1024 * 1024):
        yield import_pb2.UploadImportFileRequest(chunk=data[start:start + 1024 * 1024])


@pytest.fixture
def import_into_profile() -> Callable[..., Awaitable[Any]]:
    """`await import_into_profile(profile_stub, data, mapping_file, file_name=, metadata=)`: what the
    `crm import customers` command does with one of profile's shipped mappings (declare its
    attributes, upload the file, import, follow the operation); the finished operation, succeeded."""

    async def run(profile: Any, data: bytes, mapping_file: str, *, file_name: str, metadata: Any) -> Any:
        customers = _profile_mapping(mapping_file)
        for raw in customers["attributes"]:
            definition = json_format.ParseDict(raw, attribute_pb2.AttributeDefinition())
            await profile.CreateAttributeDefinition(
                attribute_pb2.CreateAttributeDefinitionRequest(attribute_definition=definition), metadata=metadata)
        upload = (await profile.UploadImportFile(_upload_chunks(data, file_name), metadata=metadata,
                                                 timeout=120)).upload
        request = json_format.ParseDict({**customers["request"], "upload": upload.name},
                                        import_pb2.ImportCustomersRequest())
        final = (await profile.ImportCustomers(request, metadata=metadata)).operation
        async for update in profile.WatchOperation(operations_pb2.WatchOperationRequest(name=final.name),
                                                   metadata=metadata, timeout=600):
            final = update.operation
        assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
        return final

    return run


@pytest.fixture
def service_env() -> object:
    """Builders of environment variables for real processes: `profile(url, port)`, `telemetry(endpoint)`."""

    class Env:
        profile = staticmethod(profile_env)
        telemetry = staticmethod(telemetry_env)

    return Env


async def grpc_serving(port: int) -> bool:
    """Whether the gRPC server on this local port reports SERVING (False while it refuses)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        with suppress(grpc.aio.AioRpcError):
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    return False


@asynccontextmanager
async def replica(module: str, args: list[str], env: dict[str, str], log: Path,
                  ready: Callable[[], Awaitable[bool]]) -> AsyncIterator[asyncio.subprocess.Process]:
    """One replica (`python -m <module> <args>`, output to `log`), yielded once `ready()`; killed on
    leaving if still running (a test sends SIGTERM itself to the one it replaces)."""
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", module, *args, env=env,
                                                       stdout=out, stderr=subprocess.STDOUT)
        try:
            await eventually(ready, seconds=90, interval=0.1, what=f"{module} replica ready ({log.name})")
            yield process
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.fixture
def rollout() -> object:
    """Helpers of the rolling-update tests: `replica(module, args, env, log, ready)` and `grpc_serving(port)`."""

    class Rollout:
        replica = staticmethod(replica)
        grpc_serving = staticmethod(grpc_serving)

    return Rollout
