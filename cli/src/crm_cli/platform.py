"""The platform's processes in one table, and the environment each one is started with.

Everything here is pure: it reads the `environ` mapping it is given and returns new values, so
the rules (the user's environment wins, ports come from DESIGN.md unless overridden) are unit
tested without starting anything.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

LOCAL_HOST = "127.0.0.1"


class Protocol(StrEnum):
    GRPC = "grpc"
    HTTP = "http"


@dataclass(frozen=True)
class Component:
    """One process of the platform: a gRPC service with its own database, or the HTTP gateway."""

    name: str
    default_port: int
    protocol: Protocol
    # Variables only this component may see (its own secrets); `crm run` fills them from
    # `.crm/secrets.env` unless the environment already sets them.
    secret_vars: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return f"crm_{self.name}"

    @property
    def env_prefix(self) -> str:
        return f"CRM_{self.name.upper()}"

    @property
    def port_var(self) -> str:
        return f"{self.env_prefix}_PORT"

    @property
    def database_url_var(self) -> str:
        return f"{self.env_prefix}_DATABASE_URL"

    @property
    def owns_database(self) -> bool:
        return self.protocol is Protocol.GRPC

    @property
    def database_name(self) -> str:
        """Database and login role of this service on the embedded PostgreSQL."""
        return f"crm_{self.name}"

    def argv(self, command: str) -> list[str]:
        """`python -m crm_<name> migrate|serve`; the gateway takes no sub-command."""
        if self.protocol is Protocol.HTTP:
            return [sys.executable, "-m", self.module]
        return [sys.executable, "-m", self.module, command]

    def is_installed(self) -> bool:
        """Whether `python -m crm_<name>` can run here, without importing the package."""
        spec = importlib.util.find_spec(self.module)
        if spec is None:
            return False
        return any((Path(p) / "__main__.py").is_file() for p in spec.submodule_search_locations or ())


PROFILE_SECRET_VARS = (
    "CRM_PROFILE_ENCRYPTION_KEYS", "CRM_PROFILE_ACTIVE_KEY_ID", "CRM_PROFILE_BLIND_INDEX_KEY",
)

# The whole platform, in start order. Ports are DESIGN.md's defaults.
COMPONENTS: tuple[Component, ...] = (
    Component("profile", 50051, Protocol.GRPC, PROFILE_SECRET_VARS),
    Component("segment", 50052, Protocol.GRPC),
    Component("campaign", 50053, Protocol.GRPC),
    Component("feedback", 50054, Protocol.GRPC),
    Component("risk", 50055, Protocol.GRPC),
    Component("gateway", 8080, Protocol.HTTP),
)
SERVICES = tuple(c for c in COMPONENTS if c.owns_database)
SHARED_SECRET_VARS = ("CRM_JWT_SECRET",)


# Demo template ids each channel's adapter knows under `crm run`, so offers can be created and
# campaigns submitted locally; every channel here is sent by the file adapter into
# `<data dir>/dispatch/<channel>.jsonl`. A user's own CRM_CAMPAIGN_* variables replace these.
LOCAL_CAMPAIGN_TEMPLATES: dict[str, list[str]] = {
    "SMS": ["sms-td-renewal", "sms-wealth-offer", "sms-card-upgrade"],
    "EMAIL": ["email-td-renewal", "email-wealth-offer", "email-card-upgrade"],
    "MOBILE_APP": ["app-td-banner", "app-wealth-banner", "app-card-banner"],
    "WECHAT": ["wechat-td-renewal", "wechat-wealth-offer"],
}
DISPATCH_FOLDER = "dispatch"


def local_campaign_env(data_root: Path) -> dict[str, str]:
    """Campaign's channel configuration for local use: demo templates, file adapters, a dispatch folder."""
    return {
        "CRM_CAMPAIGN_TEMPLATES": json.dumps(LOCAL_CAMPAIGN_TEMPLATES),
        "CRM_CAMPAIGN_CHANNEL_ADAPTERS": json.dumps({channel: "file" for channel in LOCAL_CAMPAIGN_TEMPLATES}),
        "CRM_CAMPAIGN_DISPATCH_DIRECTORY": str(data_root / DISPATCH_FOLDER),
    }


class PlatformError(Exception):
    """A problem the user can fix (bad option, bad variable); the message says how."""


def component(name: str) -> Component:
    for candidate in COMPONENTS:
        if candidate.name == name:
            return candidate
    raise PlatformError(f"unknown component {name!r}; known: {', '.join(c.name for c in COMPONENTS)}")


def select(only: str | None) -> list[Component]:
    """Components named in a comma-separated `--only` list (all when empty), in start order."""
    if not only:
        return list(COMPONENTS)
    names = {n.strip() for n in only.split(",") if n.strip()}
    for name in names:
        component(name)
    return [c for c in COMPONENTS if c.name in names]


def resolve_port(target: Component, environ: Mapping[str, str]) -> int:
    raw = environ.get(target.port_var, "").strip()
    if not raw:
        return target.default_port
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PlatformError(f"{target.port_var}={raw!r} is not a TCP port (1 to 65535)")
    return int(raw)


def resolve_ports(components: Iterable[Component], environ: Mapping[str, str]) -> dict[str, int]:
    ports = {c.name: resolve_port(c, environ) for c in components}
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise PlatformError(f"{name} and {seen[port]} would both listen on port {port}")
        seen[port] = name
    return ports


def external_database_url(target: Component, environ: Mapping[str, str]) -> str | None:
    """The user's own PostgreSQL for this service, when `CRM_<SVC>_DATABASE_URL` is set."""
    return environ.get(target.database_url_var, "").strip() or None


def needs_embedded_database(targets: Iterable[Component], environ: Mapping[str, str]) -> list[Component]:
    """Services that get a role and database on the embedded PostgreSQL: those with no external URL."""
    return [t for t in targets if t.owns_database and not external_database_url(t, environ)]


def address(target: Component, port: int) -> str:
    if target.protocol is Protocol.HTTP:
        return f"http://{LOCAL_HOST}:{port}"
    return f"{LOCAL_HOST}:{port}"


def build_env(
    target: Component, *, environ: Mapping[str, str], secrets: Mapping[str, str],
    database_url: str | None, ports: Mapping[str, int], data_root: Path | None = None,
) -> dict[str, str]:
    """The environment of one child process.

    The user's environment wins for every variable (an external `CRM_<SVC>_DATABASE_URL`, their
    own keys), except `CRM_ENV`, which is always `development`: `crm run` is a local tool.
    Another component's database URL and secrets are removed, so each process sees only its own.
    With `data_root` (the `.crm/` folder), campaign gets `local_campaign_env` for each of its
    channel variables the user has not set (all three are left alone when any one is set, so a
    partial configuration of the user's own is not mixed with the demo one).
    """
    foreign = {
        var for other in COMPONENTS if other is not target
        for var in (other.database_url_var, *other.secret_vars)
    }
    env = {k: v for k, v in environ.items() if k not in foreign}
    env["CRM_ENV"] = "development"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("CRM_HOST", LOCAL_HOST)
    for var in (*SHARED_SECRET_VARS, *target.secret_vars):
        if not env.get(var) and secrets.get(var):
            env[var] = secrets[var]
    if target.owns_database and database_url and not env.get(target.database_url_var):
        env[target.database_url_var] = database_url
    env[target.port_var] = str(ports.get(target.name, resolve_port(target, environ)))
    if target.name == "campaign" and data_root is not None:
        local = local_campaign_env(data_root)
        if not any(env.get(var) for var in local):
            env.update(local)
    # Every component reaches its peers on the ports this run gave them (CRM_<NAME>_PORT moves a
    # service; its peers must follow it there, not to the default port), unless the user set the
    # target. A service ignores targets of peers it does not call.
    for service in SERVICES:
        if service is not target:
            port = ports.get(service.name, resolve_port(service, environ))
            env.setdefault(f"{target.env_prefix}_{service.name.upper()}_TARGET", f"{LOCAL_HOST}:{port}")
    return env


def missing_packages(components: Sequence[Component]) -> list[Component]:
    return [c for c in components if not c.is_installed()]
