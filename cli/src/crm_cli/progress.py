"""Live progress bars on stderr, so stdout stays a clean table, JSON or CSV for scripts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from crm.common.v1 import operation_pb2
from crm_cli.operations import state_name


@contextmanager
def upload_bar(console: Console, *, file_name: str, size: int) -> Iterator[Progress]:
    columns = (TextColumn("upload {task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        bar.add_task(file_name, total=size)
        yield bar


def advance(bar: Progress, sent: int) -> None:
    bar.advance(bar.task_ids[0], sent)


class OperationBar:
    """One bar following an operation's `progress` (units done of total, its stage and state)."""

    def __init__(self, console: Console, name: str) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn())
        self._bar = Progress(*columns, console=console, disable=not console.is_terminal)
        self._task = self._bar.add_task(name, total=None, failed=0)
        self._name = name

    def __enter__(self) -> OperationBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def update(self, operation: operation_pb2.Operation) -> None:
        progress = operation.progress
        stage = f" {progress.stage}" if progress.stage else ""
        self._bar.update(self._task, description=f"{self._name} {state_name(operation.state).lower()}{stage}",
                         completed=progress.done, total=progress.total or None, failed=progress.failed)
