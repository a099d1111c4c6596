"""`crm run`: the whole platform on one machine, from an empty folder to serving, and back.

Order: lock the data folder; secrets; embedded PostgreSQL with a role and database per service
(skipped for services given an external `CRM_<SVC>_DATABASE_URL`); every service's migrations
in parallel; the services and the gateway; wait for health (one deadline for all of it); demo
data; print addresses and tokens; then supervise until Ctrl-C / SIGTERM or a child's death, and
stop in reverse: children (SIGTERM, bounded wait, SIGKILL), then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from crm_cli import bank_loader, demo_data, postgres, secrets_file, synthetic_bank, tokens, workspace
from crm_cli.platform import (
    SERVICES,
    Component,
    PlatformError,
    address,
    build_env,
    missing_packages,
    needs_embedded_database,
    resolve_ports,
    select,
)
from crm_cli.probes import Health
from crm_cli.readiness import wait_serving
from crm_cli.supervisor import Child, ChildExited, Interrupted, LogSink, Supervisor
from crmkit.auth import Role

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# How long `crm run` retries demo complaints and survey answers while feedback learns the customers.
DEMO_FEEDBACK_WAIT_SECONDS = 90.0


@dataclass(frozen=True)
class RunOptions:
    data_dir: Path
    only: str | None = None
    timeout: float = 60.0
    stream_logs: bool = True
    readable_logs: bool = False  # streamed lines as short text (log_format) instead of JSON
    demo_data: bool = True
    # Customers of the synthetic bank loaded at start (synthetic_bank.py).
    demo_customers: int = 300
    grace: float = 15.0


class StartupFailed(Exception):
    """Startup cannot go on; the message says why and what to do."""


def busy_ports(ports: Mapping[str, int], host: str = "127.0.0.1") -> list[str]:
    """Components whose port something else already listens on (a leftover run, another app)."""
    busy = []
    for name, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(f"{name} ({port})")
    return busy


class Launch:
    def __init__(self, options: RunOptions, console: Console, environ: Mapping[str, str]) -> None:
        self.options = options
        self.console = console
        self.environ = dict(environ)
        self.data = workspace.DataDir(options.data_dir.resolve())
        self.targets: list[Component] = []
        self.ports: dict[str, int] = {}
        self.database_notes: dict[str, str] = {}
        self.pg: postgres.EmbeddedPostgres | None = None
        self._pg_start: asyncio.Future[postgres.EmbeddedPostgres] | None = None
        self._deadline = 0.0

    # -- checks before anything starts ------------------------------------------------------------

    def _plan(self) -> None:
        self.targets = select(self.options.only)
        missing = missing_packages(self.targets)
        if missing:
            names = ", ".join(f"{c.name} ({c.module})" for c in missing)
            raise StartupFailed(f"not installed: {names}. Run `make install`, or start a subset with "
                                "--only, e.g. `crm run --only profile,gateway`")
        self.ports = resolve_ports(self.targets, self.environ)

    def _check_ports(self) -> None:
        busy = busy_ports(self.ports)
        if busy:
            raise StartupFailed(f"ports already in use: {', '.join(busy)}; stop what holds them or set "
                                "CRM_<NAME>_PORT / CRM_GATEWAY_PORT")

    def _secrets(self) -> dict[str, str]:
        if self.data.has_database_cluster() and not self.data.secrets.exists():
            raise StartupFailed(f"{self.data.secrets} is missing but {self.data.pgdata} holds data encrypted "
                                "with the keys it had: restore the file, or delete the pgdata folder to start over")
        loaded = secrets_file.ensure(self.data.secrets, [s.name for s in SERVICES])
        if loaded.created:
            self.console.print(f"[green]✔[/] generated development secrets in {loaded.path} (mode 0600)")
        if loaded.added:
            self.console.print(f"[green]✔[/] added {', '.join(loaded.added)} to {loaded.path}")
        if loaded.tightened:
            self.console.print(f"[yellow]![/] {loaded.path} was readable by others; now 0600")
        return loaded.values

    # -- start-up steps ---------------------------------------------------------------------------

    def _remaining(self) -> float:
        return max(0.1, self._deadline - time.monotonic())

    async def _postgres(self, supervisor: Supervisor, secrets: Mapping[str, str]) -> dict[str, str]:
        """Database URL per service on the embedded server (none for external ones)."""
        embedded = needs_embedded_database(self.targets, self.environ)
        for target in self.targets:
            if target.owns_database and target not in embedded:
                self.database_notes[target.name] = f"external ({target.database_url_var})"
        if not embedded:
            return {}
        with self.console.status("starting PostgreSQL (pgserver)…"):
            self._pg_start = asyncio.ensure_future(asyncio.to_thread(postgres.start, self.data.pgdata))
            self.pg = await supervisor.until(asyncio.shield(self._pg_start))
            roles = {t.database_name: secrets[secrets_file.db_password_var(t.name)] for t in embedded}
            created = await supervisor.until(asyncio.wait_for(postgres.prepare(self.pg, roles), self._remaining()))
        fresh = f", created {', '.join(created)}" if created else ""
        self.console.print(f"[green]✔[/] PostgreSQL {self.pg.pgdata} (pid {self.pg.pid}, unix socket only, "
                           f"password login{fresh})")
        urls = {}
        for target in embedded:
            urls[target.name] = self.pg.url(user=target.database_name, database=target.database_name,
                                            password=roles[target.database_name])
            self.database_notes[target.name] = f"embedded {target.database_name}"
        return urls

    def _env(self, target: Component, secrets: Mapping[str, str], database_url: str | None = None) -> dict[str, str]:
        return build_env(target, environ=self.environ, secrets=secrets, database_url=database_url, ports=self.ports,
                         data_root=self.data.root)

    async def _bring_up(self, supervisor: Supervisor, secrets: Mapping[str, str], urls: Mapping[str, str]) -> None:
        """Every service migrates then serves, all in parallel; then each must answer healthy."""
        states: dict[str, str] = {}
        progress = Progress(SpinnerColumn(), TextColumn("{task.description:<10}"), TextColumn("{task.fields[state]}"),
                            TimeElapsedColumn(), console=self.console)
        rows = {t.name: progress.add_task(t.name, total=1, state="starting") for t in self.targets}

        def show(target: Component, state: str, done: bool = False) -> None:
            states[target.name] = state
            progress.update(rows[target.name], state=state, completed=1 if done else 0)

        def on_status(target: Component, health: Health, detail: str) -> None:
            if health is Health.UNREACHABLE:
                show(target, "starting (not listening yet)")
            else:
                show(target, f"{health.value} {detail}".strip(), health is Health.SERVING)

        async def bring_up(target: Component) -> None:
            if target.owns_database:
                env = self._env(target, secrets, urls.get(target.name))
                show(target, "migrating")
                child = await supervisor.run_to_end(target.name, target.argv("migrate"), env)
                if child.process.returncode != 0:
                    self._show_tail(child, f"✖ {target.name} migrate exited with code {child.process.returncode}")
                    raise StartupFailed(f"{target.name}: migrations failed")
                show(target, "migrated, starting")
                await supervisor.start(target.name, target.argv("serve"), env)
            await wait_serving(target, self.ports[target.name], on_status)

        with progress:
            try:
                await supervisor.until(asyncio.wait_for(_all(bring_up(t) for t in self.targets), self._remaining()))
            except TimeoutError as exc:
                late = [f"{name} ({state})" for name, state in states.items() if not state.startswith("SERVING")]
                raise StartupFailed(f"not ready within {self.options.timeout:.0f} s: {', '.join(late)}; "
                                    f"logs in {self.data.logs}") from exc

    async def _demo_data(self, supervisor: Supervisor, secrets: Mapping[str, str]) -> None:
        if not self.options.demo_data or "profile" not in self.ports:
            return
        secret = self.environ.get("CRM_JWT_SECRET") or secrets["CRM_JWT_SECRET"]
        token = tokens.mint(secret=secret, role=Role.ADMIN, subject="crm-run:demo-loader", hours=1)
        count = self.options.demo_customers
        progress = Progress(TextColumn("demo bank"), BarColumn(), MofNCompleteColumn(), console=self.console,
                            transient=True)
        task = progress.add_task("load", total=count)
        with progress:
            async with grpc.aio.insecure_channel(address(_by_name(self.targets, "profile"),
                                                         self.ports["profile"])) as channel:
                result = await supervisor.until(bank_loader.load(
                    channel, token, synthetic_bank.generate(count),
                    on_customers=lambda n: progress.advance(task, n)))
        customers = result.customers
        self.console.print(f"[green]✔[/] demo bank: {customers.total} customers ({customers.created} new, "
                           f"{customers.existing} already there), {result.holdings} holdings, "
                           f"{result.events_accepted} new events; ids {demo_data.ID_PREFIX}0001…")
        if "feedback" in self.ports:
            await self._demo_feedback(supervisor, token, result)
        for what, code, message in [*customers.failed, *result.duplicates.failed, *result.failed][:5]:
            self.console.print(Text(f"! demo {what} refused: {code} {message}", style="yellow"))

    async def _demo_feedback(self, supervisor: Supervisor, token: str, result: bank_loader.BankLoadResult) -> None:
        """The demo bank's complaints (so the walkthrough shows a complaint's clock) and survey
        answers, through feedback. Feedback learns of customers from profile's feed: a filing it
        refuses for an unknown customer is retried for a bounded time, then reported, never fatal."""
        with self.console.status("demo complaints and survey answers (feedback is learning the customers)"):
            async with grpc.aio.insecure_channel(address(_by_name(self.targets, "feedback"),
                                                         self.ports["feedback"])) as channel:
                await supervisor.until(bank_loader.file_complaints(channel, token, result,
                                                                   wait_seconds=DEMO_FEEDBACK_WAIT_SECONDS))
                await supervisor.until(bank_loader.file_surveys(channel, token, result, synthetic_bank.surveys(),
                                                                wait_seconds=DEMO_FEEDBACK_WAIT_SECONDS))
        self.console.print(f"[green]✔[/] demo feedback: {result.complaints_filed + result.complaints_existing} "
                           f"complaints ({result.complaints_filed} new), "
                           f"{result.survey_answers_filed + result.survey_answers_existing} survey answers "
                           f"({result.survey_answers_filed} new)")

    # -- summary ----------------------------------------------------------------------------------

    def _summary(self, secrets: Mapping[str, str], ready_after: float) -> None:
        self.console.print(Text(f"CRM platform ready in {ready_after:.1f} s", style="bold green"))
        table = Table(show_header=True, header_style="bold")
        for column in ("Component", "Address", "Database"):
            table.add_column(column, no_wrap=True)
        for target in self.targets:
            table.add_row(target.name, address(target, self.ports[target.name]),
                          self.database_notes.get(target.name, "-"))
        self.console.print(table)
        secret = self.environ.get("CRM_JWT_SECRET") or secrets["CRM_JWT_SECRET"]
        self.console.print(f"Demo tokens, valid {tokens.DEMO_TOKEN_HOURS} h "
                           "(send as `authorization: Bearer <token>`; `crm token --role ROLE` mints more):")
        width = max(len(r.value) for r in tokens.HUMAN_ROLES)
        for role, token in tokens.demo_tokens(secret).items():
            self.console.print(f"  {role.value:<{width}}  {token}", soft_wrap=True, highlight=False)
        if "profile" in self.ports:
            self.console.print(f"Try: crm customers get {demo_data.ID_PREFIX}0001", highlight=False)
        if "gateway" in self.ports:
            gateway = address(_by_name(self.targets, "gateway"), self.ports["gateway"])
            self.console.print(f'     curl -H "authorization: Bearer $TOKEN" {gateway}/v1/customers/'
                               f"{demo_data.ID_PREFIX}0001   (TOKEN: the channel_app one above)",
                               highlight=False, soft_wrap=True)
        where = "streamed below and written to" if self.options.stream_logs else "written to"
        self.console.print(f"Logs {where} {_relative(self.data.logs)}/<component>.log. "
                           "Press Ctrl-C to stop everything.", highlight=False)

    def _show_tail(self, child: Child, headline: str) -> None:
        self.console.print(Text(headline, style="bold red"))
        if not self.options.stream_logs:
            for line in child.tail:
                self.console.print(Text(f"  {line}"), soft_wrap=True)
        self.console.print(f"  full log: {_relative(self.data.log_file(child.name))}", highlight=False)

    # -- the whole run ----------------------------------------------------------------------------

    async def run(self) -> int:
        started = time.monotonic()
        self._deadline = started + self.options.timeout
        self._plan()
        self.data.create()
        lock = workspace.lock(self.data)
        try:
            self._check_ports()
            secrets = self._secrets()
            logs = LogSink(console=self.console, folder=self.data.logs, names=[t.name for t in self.targets],
                           stream=self.options.stream_logs, readable=self.options.readable_logs)
            supervisor = Supervisor(logs=logs)
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, supervisor.request_stop)
            try:
                return await self._supervise(supervisor, secrets, started)
            finally:
                await self._stop(supervisor)
                for sig in STOP_SIGNALS:
                    loop.remove_signal_handler(sig)
        finally:
            lock.close()

    async def _supervise(self, supervisor: Supervisor, secrets: dict[str, str], started: float) -> int:
        try:
            # The gateway needs no database: it starts while PostgreSQL and the migrations do.
            for target in self.targets:
                if not target.owns_database:
                    await supervisor.start(target.name, target.argv("serve"), self._env(target, secrets))
            urls = await self._postgres(supervisor, secrets)
            await self._bring_up(supervisor, secrets, urls)
            ready_after = time.monotonic() - started
            await self._demo_data(supervisor, secrets)
        except Interrupted:
            self.console.print("stop requested during start-up")
            return 0
        except ChildExited as exc:
            self._show_tail(exc.child, f"✖ {exc.child.name} exited with code {exc.child.process.returncode} "
                                       "during start-up")
            return 1
        except (StartupFailed, postgres.PostgresError) as exc:
            self.console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
            return 1
        except TimeoutError:
            self.console.print(Text(f"error: start-up did not finish within {self.options.timeout:.0f} s",
                                    style="bold red"))
            return 1
        self._summary(secrets, ready_after)
        died = await supervisor.serve_until_stopped()
        if died is not None:
            self._show_tail(died, f"✖ {died.name} exited with code {died.process.returncode}; stopping everything")
            return 1
        return 0

    def _say(self, message: str | Text) -> None:
        """Shutdown messages must not stop the shutdown when the terminal is gone."""
        with contextlib.suppress(OSError, ValueError):
            self.console.print(message)

    async def _stop(self, supervisor: Supervisor) -> None:
        running = [c.name for c in supervisor.running()]
        if running:
            self._say(f"stopping {', '.join(running)}…")
        killed = await supervisor.stop(self.options.grace)
        if killed:
            self._say(Text(f"! killed (not stopped within {self.options.grace:.0f} s, or a second Ctrl-C): "
                           f"{', '.join(killed)}", style="yellow"))
        if self.pg is None and self._pg_start is not None:
            with contextlib.suppress(Exception):
                self.pg = await self._pg_start  # started while a stop was requested
        if self.pg is not None:
            await asyncio.to_thread(postgres.stop, self.pg)
            self._say("[green]✔[/] PostgreSQL stopped")


async def _all(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run together; the first failure cancels the others (no process starts after a failure)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


def _by_name(targets: Sequence[Component], name: str) -> Component:
    return next(t for t in targets if t.name == name)


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


async def run_platform(options: RunOptions, console: Console, environ: Mapping[str, str]) -> int:
    """Exit status: 0 after a requested stop, 1 when start-up fails or a child dies."""
    try:
        return await Launch(options, console, environ).run()
    except (StartupFailed, PlatformError, workspace.FolderInUse) as exc:
        console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        return 1
