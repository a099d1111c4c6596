"""Process wiring shared by every service: `serve` and `migrate`, start-up and shutdown order.

A service supplies its settings, its migrations folder and a `wire` coroutine that builds its
servicers from a `Runtime`; this module does the rest in the same order everywhere: logging,
telemetry, database, servicers, gRPC server; and on SIGTERM the reverse.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import sqlalchemy as sa

from crmkit import loop as event_loop
from crmkit.clock import Clock, utc_now
from crmkit.db import Database, migrate, wait_until_migrated
from crmkit.logs import configure_logging, get_logger
from crmkit.outbox import ChangeFeed
from crmkit.server import GrpcServer, HealthDetails, ServiceBinding, wait_for_stop_signal
from crmkit.settings import GrpcServiceSettings
from crmkit.telemetry import Telemetry, setup_telemetry

log = get_logger("crm.app")

SettingsT = TypeVar("SettingsT", bound=GrpcServiceSettings)
Closer = Callable[[], Awaitable[None]]


@dataclass
class Runtime(Generic[SettingsT]):
    """What a service's `wire` gets: its settings and database, and a place to register closers."""

    name: str
    settings: SettingsT
    db: Database
    closers: list[Closer] = field(default_factory=list)
    health_details: list[HealthDetails] = field(default_factory=list)
    # Set when shutdown begins, before in-flight calls drain: long-lived streams end on it.
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    # "Now" for the service and its background workers (a ManualClock in tests that drive time).
    clock: Clock = utc_now

    def change_feed(self, events: sa.Table, state: sa.Table, *, poll_seconds: float) -> ChangeFeed:
        """The service's change feed, whose streams end when the service starts to drain."""
        return ChangeFeed(self.db, events, state, poll_seconds=poll_seconds, draining=self.draining)

    def add_health_details(self, details: HealthDetails) -> None:
        """Key-values the health probe logs with its status (e.g. a read model's lag)."""
        self.health_details.append(details)

    async def collect_health_details(self) -> dict[str, object]:
        collected: dict[str, object] = {}
        for details in self.health_details:
            collected.update(await details())
        return collected

    def on_close(self, closer: Closer) -> None:
        self.closers.append(closer)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:
                log.exception("closer_failed", closer=getattr(closer, "__qualname__", repr(closer)))
        await self.db.dispose()


Wire = Callable[[Runtime[SettingsT]], Awaitable[Sequence[ServiceBinding]]]


@dataclass(frozen=True)
class ServiceSpec(Generic[SettingsT]):
    """Everything `crmkit.app` needs to know about one service."""

    name: str
    settings_type: type[SettingsT]
    migrations: Path
    wire: Wire[SettingsT]

    @property
    def error_domain(self) -> str:
        return f"{self.name}.crm"


async def start(spec: ServiceSpec[SettingsT], settings: SettingsT, *,
                clock: Clock = utc_now) -> tuple[GrpcServer, Runtime[SettingsT]]:
    """Build the runtime and start serving; used by `serve` and by the in-process test fixtures."""
    db = await Database.open(settings.database_url, pool_size=settings.db_pool_size,
                             application_name=f"crm-{spec.name}")
    runtime = Runtime(name=spec.name, settings=settings, db=db, clock=clock)
    try:
        bindings = await spec.wire(runtime)
        server = GrpcServer(settings=settings, bindings=bindings, port=settings.port,
                            error_domain=spec.error_domain, readiness=runtime.db.reachable,
                            health_details=runtime.collect_health_details)
        await server.start()
    except BaseException:
        await runtime.close()
        raise
    return server, runtime


async def stop(server: GrpcServer, runtime: Runtime[SettingsT]) -> None:
    runtime.draining.set()
    await server.stop()
    await runtime.close()


async def _serve(spec: ServiceSpec[SettingsT], settings: SettingsT, telemetry: Telemetry) -> None:
    server, runtime = await start(spec, settings)
    # Everything made at start-up (modules, descriptors, settings, pools) lives as long as the
    # process: moved out of the collector's sight, full collections no longer walk it every time.
    gc.collect()
    gc.freeze()
    try:
        await wait_for_stop_signal()
    finally:
        await stop(server, runtime)
        telemetry.shutdown()


def main(spec: ServiceSpec[SettingsT], argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"crm-{spec.name}", description=f"The CRM {spec.name} service.")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", "wait-migrated"],
                        help="serve RPCs (default), upgrade the database schema and exit, or wait until "
                             "the schema holds every migration of this code (a Deployment's init container)")
    args = parser.parse_args(argv)
    try:
        settings = spec.settings_type()
    except Exception as exc:  # pydantic names every missing or bad variable
        print(f"crm-{spec.name}: configuration error:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(service=spec.name, level=settings.log_level)
    if args.command == "migrate":
        asyncio.run(migrate(spec.migrations, settings.database_url))
        log.info("migrated")
        return
    if args.command == "wait-migrated":
        asyncio.run(wait_until_migrated(spec.migrations, settings.database_url,
                                        on_wait=lambda pending: log.info("waiting_for_migrations", pending=pending)))
        log.info("schema_current")
        return
    telemetry = setup_telemetry(service_name=f"crm-{spec.name}")
    event_loop.run(_serve(spec, settings, telemetry))
