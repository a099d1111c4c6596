"""Child processes of `crm run`: start, stream their logs, notice deaths, stop them in order.

Each child runs in its own session (process group), so a Ctrl-C in the terminal reaches only
`crm run`, which then stops the children itself: SIGTERM to each group (the services report
NOT_SERVING and drain), a bounded wait, then SIGKILL for what is left. A second Ctrl-C skips
the wait.

A death is learnt from the process itself (the event loop's child watcher waits on its pid),
never from the end of its output: what a child started (a service's operation workers,
multiprocessing's resource tracker) inherits its stdout and would keep the log pipe open after
the child is gone. Once a child has exited, its process group gets LEFTOVER_GRACE seconds to go
by itself (the kit's workers die with their service), then whatever is left of it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from rich.console import Console
from rich.text import Text

from crm_cli import log_format

T = TypeVar("T")
TAIL_LINES = 20
LINE_LIMIT = 1 << 20  # a JSON log line with a traceback can be long
LEFTOVER_GRACE = 2.0
DRAIN_SECONDS = 5.0
STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan")


class Interrupted(Exception):
    """A stop was requested (Ctrl-C, SIGTERM) while waiting."""


class ChildExited(Exception):
    """A child that should keep running exited."""

    def __init__(self, child: Child) -> None:
        self.child = child
        super().__init__(f"{child.name} exited with code {child.process.returncode}")


class _ChildProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's stream protocol, plus an event set when the process exits, whoever still holds
    its pipes (`Process.wait()` also waits for the pipes to close)."""

    def __init__(self, *, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    long_running: bool
    transport: asyncio.SubprocessTransport
    exited: asyncio.Event
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    pump: asyncio.Task[None] | None = None
    watch: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.process.returncode is None


class LogSink:
    """Writes each child's lines to `<logs>/<name>.log` and, when streaming, to the console
    prefixed with the name. Files are truncated at each run: the terminal keeps the history."""

    def __init__(self, *, console: Console, folder: Path, names: Sequence[str], stream: bool,
                 readable: bool = False) -> None:
        self._console = console
        self._stream = stream
        self._readable = readable  # JSON lines shown as short text lines (log_format.readable)
        self._width = max((len(n) for n in names), default=0)
        self._styles = {name: STYLES[i % len(STYLES)] for i, name in enumerate(names)}
        self._files: dict[str, IO[str]] = {}
        self._folder = folder

    def path(self, name: str) -> Path:
        return self._folder / f"{name}.log"

    def _file(self, name: str) -> IO[str]:
        if name not in self._files:
            self._files[name] = open(self.path(name), "w", encoding="utf-8",  # noqa: SIM115 - closed in close()
                                     opener=_private)
        return self._files[name]

    def write(self, name: str, line: str) -> None:
        handle = self._file(name)
        handle.write(line + "\n")
        handle.flush()
        if self._stream:
            prefix = Text(f"{name:<{self._width}} | ", style=self._styles.get(name, "white"))
            try:
                shown = log_format.readable(line) if self._readable else line
                self._console.print(prefix + Text(shown), soft_wrap=True, highlight=False)
            except (OSError, ValueError):
                # The terminal went away (closed window, `crm run | head`): keep draining the
                # children's pipes into the files, or they would block on a full pipe.
                self._stream = False

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


class Supervisor:
    def __init__(self, *, logs: LogSink) -> None:
        self._logs = logs
        self._children: list[Child] = []
        self._stopping = False
        self.stop_requested = asyncio.Event()
        self.force = asyncio.Event()
        self._died: asyncio.Future[Child] = asyncio.get_running_loop().create_future()

    def request_stop(self) -> None:
        """Signal handler: the first call asks for a clean stop, the next one forces it."""
        if self.stop_requested.is_set():
            self.force.set()
        self.stop_requested.set()

    async def _spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str], *, long_running: bool) -> Child:
        if self._stopping or self.stop_requested.is_set():
            raise Interrupted  # nothing may start once the stop has begun
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _ChildProtocol(limit=LINE_LIMIT, loop=loop),
            *argv, env=dict(env), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        process = asyncio.subprocess.Process(transport, protocol, loop)
        child = Child(name, process, long_running, transport=transport, exited=protocol.exited)
        child.pump = asyncio.create_task(self._pump(child), name=f"logs-{name}")
        child.watch = asyncio.create_task(self._watch(child), name=f"watch-{name}")
        self._children.append(child)
        return child

    async def _pump(self, child: Child) -> None:
        stream = child.process.stdout
        assert stream is not None
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # longer than LINE_LIMIT: asyncio has dropped what it buffered
                raw = b"[crm run: an over-long log line was dropped]\n"
            if not raw:
                break
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            child.tail.append(line)
            self._logs.write(child.name, line)

    async def _watch(self, child: Child) -> None:
        """Wait for the child's exit, clear away what it leaves behind, report an unexpected death
        (after its last lines, so the tail shown with it is complete)."""
        assert child.pump is not None
        await child.exited.wait()
        await asyncio.wait({child.pump}, timeout=LEFTOVER_GRACE)
        # Its group outlives it only through processes it started; none may outlive it (the pgid
        # stays reserved while any member lives, so this reaches only them).
        _signal_group(child, signal.SIGKILL)
        await asyncio.wait({child.pump}, timeout=DRAIN_SECONDS)
        if child.long_running and not self._stopping and not self._died.done():
            self._died.set_result(child)

    async def run_to_end(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        """A one-shot command (a migration); returns the finished child (see its returncode)."""
        child = await self._spawn(name, argv, env, long_running=False)
        assert child.watch is not None
        await child.watch
        return child

    async def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        return await self._spawn(name, argv, env, long_running=True)

    async def until(self, awaitable: Awaitable[T]) -> T:
        """Await, unless a stop is requested (Interrupted) or a child dies (ChildExited) first."""
        work = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self.stop_requested.wait())
        try:
            await asyncio.wait({work, stop, self._died}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        if self._died.done():
            raise ChildExited(self._died.result())
        raise Interrupted

    async def serve_until_stopped(self) -> Child | None:
        """Block until a stop is requested (None) or a child dies (that child)."""
        try:
            await self.until(asyncio.Event().wait())
        except ChildExited as exc:
            return exc.child
        except Interrupted:
            return None
        return None  # pragma: no cover - an Event nobody sets never completes

    def running(self) -> list[Child]:
        return [c for c in self._children if c.running]

    async def stop(self, grace: float) -> list[str]:
        """SIGTERM every running child, wait up to `grace` seconds, SIGKILL the rest.

        Returns the names of children that had to be killed.
        """
        self._stopping = True
        running = self.running()
        for child in reversed(running):
            _signal_group(child, signal.SIGTERM)
        killed: list[str] = []
        if running:
            exits = [asyncio.ensure_future(c.exited.wait()) for c in running]
            force = asyncio.ensure_future(self.force.wait())
            all_exited = asyncio.ensure_future(asyncio.wait(exits))
            await asyncio.wait({all_exited, force}, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
            for waiting in (force, all_exited, *exits):
                waiting.cancel()
            for child in self.running():
                killed.append(child.name)
                _signal_group(child, signal.SIGKILL)
        watches = [c.watch for c in self._children if c.watch is not None]
        if watches:
            await asyncio.wait(watches, timeout=LEFTOVER_GRACE + DRAIN_SECONDS + 5)
        for child in self._children:
            # Closed while the loop runs: a transport collected after `asyncio.run` returns
            # would print "Event loop is closed".
            child.transport.close()
        self._logs.close()
        return killed


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _signal_group(child: Child, sig: signal.Signals) -> None:
    """Signal the child's whole process group (its own worker processes too)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, sig)
