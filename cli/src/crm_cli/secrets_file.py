"""Local development secrets in `.crm/secrets.env`: generated once, mode 0600, reused after.

The file is `KEY=value` lines (it can be `source`d by a shell). It holds the JWT secret, the
profile service's field-encryption key ring and blind-index key, and one password per service
database role. Keys that a newer version of the platform needs are added to an existing file;
values already there are never changed (the encryption keys protect data already stored).
These are development secrets only: production secrets come from Kubernetes Secrets.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from crmkit.crypto import generate_key

FILE_MODE = 0o600
ENCRYPTION_KEY_ID = "dev1"
HEADER = (
    "# Development secrets of `crm run`, generated {when}. Never commit, never use in production.\n"
    "# Losing this file makes the profile data in pgdata/ unreadable (it is encrypted with these keys).\n"
)


def db_password_var(service: str) -> str:
    return f"CRM_{service.upper()}_DB_PASSWORD"


def generate(services: Iterable[str]) -> dict[str, str]:
    """A fresh set of every secret `crm run` needs for these services."""
    values = {
        "CRM_JWT_SECRET": secrets.token_urlsafe(48),
        "CRM_PROFILE_ENCRYPTION_KEYS": f"{ENCRYPTION_KEY_ID}:{generate_key()}",
        "CRM_PROFILE_ACTIVE_KEY_ID": ENCRYPTION_KEY_ID,
        "CRM_PROFILE_BLIND_INDEX_KEY": generate_key(),
    }
    for service in services:
        # URL-safe, so it goes into a database URL unquoted.
        values[db_password_var(service)] = secrets.token_urlsafe(24)
    return values


def parse(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def render(values: Mapping[str, str], *, when: datetime | None = None) -> str:
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return HEADER.format(when=stamp) + "".join(f"{k}={v}\n" for k, v in values.items())


def read(path: Path) -> dict[str, str]:
    return parse(path.read_text(encoding="utf-8"))


def _write_new(path: Path, text: str) -> None:
    """Create the file with mode 0600 from the start: it never exists with looser permissions."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    _write_new(temporary, text)
    os.replace(temporary, path)


@dataclass(frozen=True)
class SecretsFile:
    path: Path
    values: dict[str, str]
    created: bool
    # Keys added to an existing file (a service that did not exist when it was made).
    added: tuple[str, ...] = ()
    # The file had looser permissions than 0600 and was tightened.
    tightened: bool = False


def ensure(path: Path, services: Iterable[str]) -> SecretsFile:
    """Load the secrets, creating the file or adding missing keys; never changes a stored value."""
    wanted = generate(services)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_new(path, render(wanted))
        return SecretsFile(path, wanted, created=True)
    tightened = False
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(FILE_MODE)
        tightened = True
    values = read(path)
    added = tuple(k for k in wanted if not values.get(k))
    if added:
        values.update({k: wanted[k] for k in added})
        _replace(path, render(values))
    return SecretsFile(path, values, created=False, added=added, tightened=tightened)
