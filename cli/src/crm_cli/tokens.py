"""Development bearer tokens, signed with the local JWT secret.

The secret is `CRM_JWT_SECRET` from the environment when set (the same rule `crm run` applies
to its children), else the one in `.crm/secrets.env`. Production tokens come from the bank's
identity provider; these exist for the demo, the command line and tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from crm_cli import secrets_file
from crmkit.auth import MAX_TOKEN_LIFETIME_SECONDS, Role, issue_token

DEMO_TOKEN_HOURS = 12
# Roles a person or a channel application holds; `service` is the platform's own identity.
HUMAN_ROLES = tuple(r for r in Role if r is not Role.SERVICE)
# Demo subjects: the relationship manager owns a book of demo customers (see demo_data.py).
DEMO_SUBJECTS = {
    Role.CHANNEL_APP: "app-mobile-banking",
    Role.RELATIONSHIP_MANAGER: "rm-1001",
    Role.MARKETER: "mkt-2001",
    Role.ANALYST: "ana-3001",
    Role.RISK_OFFICER: "risk-4001",
    Role.AUDITOR: "aud-5001",
    Role.ADMIN: "admin-0001",
    Role.SERVICE: "svc-crm-cli",
}


class NoSecret(Exception):
    """Neither CRM_JWT_SECRET nor a secrets file: nothing to sign with."""


def jwt_secret(environ: Mapping[str, str], secrets_path: Path) -> str:
    from_env = environ.get("CRM_JWT_SECRET", "").strip()
    if from_env:
        return from_env
    if secrets_path.exists():
        secret = secrets_file.read(secrets_path).get("CRM_JWT_SECRET", "")
        if secret:
            return secret
    raise NoSecret(f"no CRM_JWT_SECRET in the environment and no {secrets_path}; run `crm run` once "
                   "or set CRM_JWT_SECRET")


def mint(*, secret: str, role: Role, subject: str | None = None, hours: float = DEMO_TOKEN_HOURS) -> str:
    seconds = int(hours * 3600)
    if not 0 < seconds <= MAX_TOKEN_LIFETIME_SECONDS:
        raise ValueError(f"hours must be more than 0 and at most {MAX_TOKEN_LIFETIME_SECONDS // 3600}")
    return issue_token(secret=secret, subject=subject or DEMO_SUBJECTS[role], roles=[role],
                       lifetime_seconds=seconds)


def demo_tokens(secret: str) -> dict[Role, str]:
    return {role: mint(secret=secret, role=role) for role in HUMAN_ROLES}


def caller_token(environ: Mapping[str, str], secrets_path: Path) -> str:
    """`CRM_TOKEN` when set, else a short-lived admin token minted for this command."""
    token = environ.get("CRM_TOKEN", "").strip()
    if token:
        return token
    return mint(secret=jwt_secret(environ, secrets_path), role=Role.ADMIN, subject="crm-cli", hours=1)
