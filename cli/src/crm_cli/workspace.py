"""The local data folder of `crm run` (`.crm/` in the repository root, git-ignored).

    .crm/secrets.env   development secrets, mode 0600, generated once
    .crm/pgdata/       the embedded PostgreSQL cluster (owned by the `pgserver` user when run as root)
    .crm/logs/<c>.log  each process's log of the latest run
    .crm/dispatch/     campaign's file adapter output, `<channel>.jsonl` (platform.local_campaign_env)
    .crm/run.lock      held by the running `crm run`, so two cannot share one folder
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DEFAULT_NAME = ".crm"


def repository_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that looks like this repository."""
    for folder in (start, *start.parents):
        if (folder / "protos" / "crm").is_dir() and (folder / "libs" / "crmkit").is_dir():
            return folder
    return None


def default_data_dir(cwd: Path | None = None) -> Path:
    here = (cwd or Path.cwd()).resolve()
    return (repository_root(here) or here) / DEFAULT_NAME


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.env"

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lock(self) -> Path:
        return self.root / "run.lock"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def has_database_cluster(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def create(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.logs.mkdir(mode=0o700, exist_ok=True)


class FolderInUse(Exception):
    """Another `crm run` holds this data folder."""


def lock(data_dir: DataDir) -> IO[str]:
    """Hold the folder's run lock until the returned file is closed (or the process exits)."""
    handle = open(data_dir.lock, "a+")  # noqa: SIM115 - the lock lives as long as the run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise FolderInUse(f"{data_dir.root} is in use by `crm run` (pid {holder}); stop it first") from exc
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
