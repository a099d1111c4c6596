"""Test fixtures shared by every service's tests: a real PostgreSQL, real in-process servers.

PostgreSQL comes from `CRM_TEST_DATABASE_URL` when set (CI has one at 127.0.0.1:5432) and from
an embedded `pgserver` otherwise. Each test session gets fresh databases, migrated with the
service's own Alembic scripts, and drops them at the end.

Registered as a pytest plugin by the repository's root conftest.py. It needs crmkit's `testing`
extra (pytest and friends), which no service's runtime installs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc

try:
    import pytest
except ImportError as missing:  # pragma: no cover - a runtime image has no test runner
    raise ImportError("crmkit.testing needs crmkit's `testing` extra: pip install 'crmkit[testing]'") from missing
import sqlalchemy as sa
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from crm.common.v1 import change_event_pb2
from crmkit import app
from crmkit.auth import Role, issue_token
from crmkit.clock import Clock, utc_now
from crmkit.db import migrate
from crmkit.logs import configure_logging

TEST_JWT_SECRET = "test-only-secret-" + "x" * 32

MessageT = TypeVar("MessageT", bound=Message)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(scope="session", autouse=True)
def json_logs() -> None:
    """Tests log as production does: JSON lines, tracebacks without local variables."""
    configure_logging(service="test", level="INFO")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A superuser URL of a real PostgreSQL server for this test session."""
    configured = os.environ.get("CRM_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="crm-test-pg-") as data_dir:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


class DatabaseFactory:
    """Creates throw-away databases on the test server, and drops them all at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._created: list[str] = []

    async def create(self, prefix: str) -> str:
        name = f"crmtest_{prefix}_{uuid.uuid4().hex[:10]}"
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self._created.append(name)
        return _with_database(self.admin_url, name)

    async def drop_all(self, *, concurrently: int = 8) -> None:
        """Drop every database made. Several at once: each DROP DATABASE waits for a checkpoint,
        and concurrent ones share it (a run's few hundred took 90 s one by one, a second or two
        eight at a time)."""
        gate = asyncio.Semaphore(concurrently)

        async def drop(name: str) -> None:
            async with gate:
                connection = await asyncpg.connect(self.admin_url)
                try:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                finally:
                    await connection.close()

        await asyncio.gather(*(drop(name) for name in self._created))


@pytest.fixture(scope="session")
async def database_factory(postgres_admin_url: str) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(postgres_admin_url)
    yield factory
    await factory.drop_all()


async def migrated_database(factory: DatabaseFactory, spec: app.ServiceSpec[Any]) -> str:
    url = await factory.create(spec.name)
    await migrate(spec.migrations, url)
    return url


def token(*roles: Role | str, subject: str = "tester") -> str:
    return issue_token(secret=TEST_JWT_SECRET, subject=subject, roles=roles)


class SigningKeyPair:
    """An identity provider's key pair for tests: `algorithm` RS256 (RSA 2048) or ES256 (P-256),
    published as `jwk` under `kid`, minting tokens as the provider would."""

    def __init__(self, algorithm: Literal["RS256", "ES256"] = "RS256", *, kid: str | None = None) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from jwt.algorithms import ECAlgorithm, RSAAlgorithm

        self.algorithm = algorithm
        self.kid = kid or f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}"
        if algorithm == "RS256":
            rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.private_key: Any = rsa_key
            public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
        else:
            ec_key = ec.generate_private_key(ec.SECP256R1())
            self.private_key = ec_key
            public = json.loads(ECAlgorithm.to_jwk(ec_key.public_key()))
        self.jwk: dict[str, Any] = {**public, "kid": self.kid, "alg": algorithm, "use": "sig"}

    def token(self, *roles: Role | str, subject: str = "tester", issuer: str = "crm-platform",
              audience: str = "crm", kid: str | None = None) -> str:
        return issue_token(subject=subject, roles=roles, issuer=issuer, audience=audience, private_key=self.private_key,
                           key_id=kid or self.kid, algorithm=self.algorithm)


def write_jwks(path: Path, *pairs: SigningKeyPair) -> Path:
    """Publish these key pairs' public keys as a JWKS file at `path` (replacing what was there)."""
    path.write_text(json.dumps({"keys": [pair.jwk for pair in pairs]}))
    return path


def bearer(*roles: Role | str, subject: str = "tester") -> tuple[tuple[str, str], ...]:
    """Call metadata carrying a test token with these roles."""
    return (("authorization", f"Bearer {token(*roles, subject=subject)}"),)


@asynccontextmanager
async def serving(spec: app.ServiceSpec[Any], *, database_url: str, clock: Clock = utc_now,
                  **overrides: Any) -> AsyncIterator[tuple[Any, Any]]:
    """The service serving on a free port in this process: its server (`bound_port`) and runtime;
    `clock` is the service's "now" (a `crmkit.clock.ManualClock` lets a test drive time)."""
    settings = spec.settings_type(
        env="test", jwt_secret=TEST_JWT_SECRET, database_url=database_url, port=0, host="127.0.0.1",
        shutdown_grace_seconds=1.0, **overrides,
    )
    server, runtime = await app.start(spec, settings, clock=clock)
    try:
        yield server, runtime
    finally:
        await app.stop(server, runtime)


@asynccontextmanager
async def running_service(
    spec: app.ServiceSpec[Any], *, database_url: str, clock: Clock = utc_now, **overrides: Any,
) -> AsyncIterator[tuple[grpc.aio.Channel, Any]]:
    """The service on a free port in this process, and a plain channel to it."""
    async with serving(spec, database_url=database_url, clock=clock, **overrides) as (server, runtime):
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.bound_port}")
        try:
            yield channel, runtime
        finally:
            await channel.close()


def service_fixtures(spec: app.ServiceSpec[Any], stub_type: type, *, stub: str, **overrides: Any) -> tuple[Any, ...]:
    """A service's test fixtures, to assign in its conftest.py: the same wiring for every service.

    `<spec.name>_database` (a migrated database, once per session), `<spec.name>_service` (the
    service serving on it in process, once per session: channel and runtime, with the settings
    `overrides`) and `<stub>` (a `stub_type` client on that channel, per test).
    """
    database_name, service_name = f"{spec.name}_database", f"{spec.name}_service"

    async def database(database_factory: DatabaseFactory) -> str:
        return await migrated_database(database_factory, spec)

    async def service(**needs: str) -> AsyncIterator[tuple[Any, Any]]:
        async with running_service(spec, database_url=needs[database_name], **overrides) as running:
            yield running

    def client(**needs: tuple[Any, Any]) -> Any:
        channel, _ = needs[service_name]
        return stub_type(channel)

    return (_named_fixture(database, database_name, scope="session"),
            _named_fixture(service, service_name, scope="session", needs=database_name),
            _named_fixture(client, stub, scope="function", needs=service_name))


def _named_fixture(function: Callable[..., Any], name: str, *, scope: Literal["session", "function"],
                   needs: str | None = None) -> Any:
    """`function` as the fixture `name`; with `needs`, pytest passes it that fixture by keyword."""
    if needs is not None:
        function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # typeshed: Callable declares no __signature__, inspect reads it
            [inspect.Parameter(needs, inspect.Parameter.KEYWORD_ONLY)])
    function.__name__ = function.__qualname__ = name
    return pytest.fixture(scope=scope, name=name)(function)


def with_overrides(message: MessageT, overrides: Mapping[str, Any]) -> MessageT:
    """`message` with fields replaced: messages copied in, lists replacing repeated fields, scalars set."""
    for field, value in overrides.items():
        if isinstance(value, Message):
            getattr(message, field).CopyFrom(value)
        elif isinstance(value, list):
            message.ClearField(field)
            getattr(message, field).extend(value)
        else:
            setattr(message, field, value)
    return message


async def row_counts(service: tuple[Any, Any], *tables: str) -> tuple[int, ...]:
    """How many rows each of `tables` holds now in a running service's database, in one snapshot."""
    _, runtime = service
    counts = ", ".join(f"(SELECT count(*) FROM {table})" for table in tables)  # noqa: S608 (test-chosen names)
    async with runtime.db.engine.connect() as connection:
        return tuple((await connection.execute(sa.text(f"SELECT {counts}"))).one())


async def rows_about(service: tuple[Any, Any], table: str, resource_name: str) -> int:
    """Rows of `table` (outbox_event, audit_record: anything with a `resource_name`) about one
    resource or its children. A shared service's background workers write rows about other
    resources at any time, so "this call wrote nothing" is asked about the call's own resource."""
    _, runtime = service
    async with runtime.db.engine.connect() as connection:
        return int((await connection.execute(sa.text(
            f"SELECT count(*) FROM {table} WHERE resource_name = :name OR resource_name LIKE :children"),  # noqa: S608
            {"name": resource_name, "children": resource_name.replace("%", r"\%") + "/%"})).scalar_one())


def row_counter(service: tuple[Any, Any]) -> Callable[[str], Awaitable[int]]:
    """`await count(table)`: rows in a table of a running service's database, to show a refused call wrote nothing."""
    async def count(table: str) -> int:
        (rows,) = await row_counts(service, table)
        return rows

    return count


# --- reading errors ------------------------------------------------------------------------------


def _details(error: grpc.aio.AioRpcError, detail_type: type[MessageT]) -> list[MessageT]:
    status = rpc_status.from_call(error)
    assert status is not None, "error carries google.rpc.Status details"
    found = []
    for detail in status.details:
        if detail.Is(detail_type.DESCRIPTOR):
            unpacked = detail_type()
            detail.Unpack(unpacked)
            found.append(unpacked)
    return found


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest of a failed call as {field path: description} (the first description of a field)."""
    found: dict[str, str] = {}
    for bad in _details(error, error_details_pb2.BadRequest):
        for violation in bad.field_violations:
            found.setdefault(violation.field, violation.description)
    return found


def error_info(error: grpc.aio.AioRpcError, *, domain: str | None = None) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a failed call (the test fails without one); with `domain`, checks its domain too."""
    infos = _details(error, error_details_pb2.ErrorInfo)
    if not infos:
        raise AssertionError("no ErrorInfo")
    if domain is not None:
        assert infos[0].domain == domain
    return infos[0]


def error_reason(error: grpc.aio.AioRpcError, *, domain: str | None = None) -> str:
    """The ErrorInfo reason of a failed call, "" when it has none; with `domain`, checks its domain too."""
    infos = _details(error, error_details_pb2.ErrorInfo)
    if infos and domain is not None:
        assert infos[0].domain == domain
    return infos[0].reason if infos else ""


# --- waiting for a condition --------------------------------------------------------------------

_PENDING = object()


async def eventually(check: Callable[[], Any], *, until: Callable[[Any], bool] = bool, seconds: float = 15.0,
                     interval: float = 0.05, what: str = "the condition") -> Any:
    """`check()`'s value once `until(value)` holds, calling `check` (sync or async) every `interval`.

    The one way a test waits for something another task or process does: no fixed sleeps. An
    AssertionError from `check` (or `until`) means "not yet". After `seconds` it fails with an
    AssertionError naming `what` and the last value seen, chained to the last assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    last: Any = _PENDING
    failure: AssertionError | None = None
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            last, failure = value, None
            if until(value):
                return value
        except AssertionError as error:
            failure = error
        if loop.time() >= deadline:
            seen = "nothing (every check failed)" if last is _PENDING else repr(last)
            raise AssertionError(f"{what} did not hold within {seconds}s; last value: {seen}"
                                 + (f"; last assertion: {failure}" if failure else "")) from failure
        await asyncio.sleep(interval)


# --- reading a change feed -----------------------------------------------------------------------


def change_feed(stub: Any, request_type: type[Message], metadata: Any) -> Callable[..., Any]:
    """`open(**fields)`: a WatchChanges call on `stub` with `request_type(**fields)`, as the caller in `metadata`."""
    return lambda **fields: stub.WatchChanges(request_type(**fields), metadata=metadata)


async def read_changes(
    call: Any, *, until: Callable[[list[change_event_pb2.ChangeEvent]], bool] | None = None, seconds: float = 5.0,
    strict: bool = False,
) -> list[change_event_pb2.ChangeEvent]:
    """Events from an open WatchChanges `call` until `until(events)` holds or `seconds` pass; the call is cancelled.

    Running out of time returns what came so far, or with `strict` raises TimeoutError.
    """
    events: list[change_event_pb2.ChangeEvent] = []
    try:
        async with asyncio.timeout(seconds):
            async for response in call:
                events.extend(response.events)
                if until is not None and until(events):
                    break
    except TimeoutError:
        if strict:
            raise
    finally:
        call.cancel()
    return events


async def next_events(
    open_feed: Callable[..., Any], after: str, wanted: int, *, resource_types: Iterable[str] = (),
    seconds: float = 5.0,
) -> list[change_event_pb2.ChangeEvent]:
    """The feed read from `after` until `wanted` events arrived (or `seconds` passed); `open_feed` as `change_feed`."""
    call = open_feed(after_cursor=after, resource_types=list(resource_types))
    return await read_changes(call, until=lambda events: len(events) >= wanted, seconds=seconds)


async def tail_cursor(open_feed: Callable[..., Any], *, quiet: float = 0.5, first_batch: float = 5.0,
                      seconds: float = 30.0) -> str:
    """The cursor of the newest event so far ("" when none): other tests share the database.

    Reads the whole backlog, however long the session has made it, and stops once the feed has
    been quiet for `quiet` seconds (the feed sends nothing while there is nothing new), or after
    `seconds` with the newest cursor seen (a background writer may never pause that long).

    The first batch may take longer than `quiet` to come on a loaded machine with a long backlog,
    and "" would then replay the whole session's feed: it is awaited up to `first_batch` seconds."""
    call = open_feed()
    responses = call.__aiter__()
    last = ""
    deadline = asyncio.get_running_loop().time() + seconds
    wait = max(quiet, first_batch)
    try:
        while asyncio.get_running_loop().time() < deadline:
            try:
                response = await asyncio.wait_for(responses.__anext__(), wait)
            except (TimeoutError, StopAsyncIteration):
                break
            wait = quiet
            if response.events:
                last = response.events[-1].cursor
    finally:
        call.cancel()
    return last


@asynccontextmanager
async def service_process(module: str, env: Mapping[str, str], *, port: int, log_path: Path,
                          timeout: float = 60.0) -> AsyncIterator[str]:
    """A service as a real process (`python -m <module> migrate`, then `serve`), for tests of a
    component that may reach it only over its gRPC contract (the gateway); its address, once the
    standard health service answers SERVING. Stopped with SIGTERM at the end; its JSON log lines
    go to `log_path`."""
    import subprocess
    import sys

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    environment = {**os.environ, **env}
    migrated = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", module, "migrate"], env=environment,
                                       capture_output=True, timeout=timeout)
    if migrated.returncode != 0:  # the reason is in its output: the bare exit status says nothing
        output = (migrated.stdout + migrated.stderr).decode(errors="replace")
        raise RuntimeError(f"{module} migrate exited {migrated.returncode}:\n{output[-3000:]}")
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", module, "serve", env=environment,
                                                       stdout=log, stderr=subprocess.STDOUT)
        address = f"127.0.0.1:{port}"
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                health = health_pb2_grpc.HealthStub(channel)

                async def serving() -> bool:
                    if process.returncode is not None:  # no point waiting: fail now, with its log
                        logged = await asyncio.to_thread(log_path.read_text, errors="replace")
                        pytest.fail(f"{module} exited: {logged[-2000:]}")
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                        return reply.status == health_pb2.HealthCheckResponse.SERVING
                    return False

                await eventually(serving, seconds=timeout, interval=0.1, what=f"{module} SERVING")
            yield address
        finally:
            await stop_process(process)


async def stop_process(process: asyncio.subprocess.Process, *, timeout: float = 30.0) -> None:
    """SIGTERM a child process and wait for it to exit; SIGKILL it after `timeout` seconds."""
    if process.returncode is None:
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()


class SpanCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """Receives OTLP/gRPC exports from the processes under test and keeps every span."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, trace_pb2.Span]] = []  # (service.name, span)

    async def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
                     ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next((a.value.string_value for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture(scope="session")
async def span_collector() -> AsyncIterator[tuple[SpanCollector, str]]:
    collector = SpanCollector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield collector, f"http://127.0.0.1:{port}"
    await server.stop(0)


def telemetry_env(endpoint: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRICS_EXPORTER": "none",
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def random_key() -> str:
    return secrets.token_urlsafe(32)


def shared_data_dir(*names: str) -> Path:
    """`../shared/data` beside the repository, skipping the test when it (or a file) is absent."""
    root = Path(__file__).resolve()
    for parent in root.parents:
        candidate = parent.parent / "shared" / "data"
        if (parent / ".git").exists() or (parent / "Makefile").exists():
            break
    else:  # pragma: no cover
        candidate = Path("../shared/data")
    missing: Iterable[str] = [n for n in names if not (candidate / n).exists()]
    if not candidate.is_dir() or missing:
        pytest.skip(f"real data sets not found at {candidate} (a clone without shared/ skips these tests)")
    return candidate


def assert_enum_mirrors(domain: type[IntEnum], proto: EnumTypeWrapper, *, prefix: str) -> None:
    """`domain` has the proto enum's names (less `prefix`) and numbers: they cannot drift apart. A
    domain enum may leave out the proto's UNSPECIFIED 0, which no stored value holds."""
    expected = {name.removeprefix(prefix): number for name, number in proto.items()
                if number != 0 or 0 in set(domain)}
    assert {member.name: member.value for member in domain} == expected
