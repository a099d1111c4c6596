"""`crm token`: a development bearer token signed with the local secret."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from crm_cli import output, workspace
from crm_cli.options import data_dir_option, json_option
from crm_cli.tokens import DEMO_SUBJECTS, DEMO_TOKEN_HOURS, NoSecret, jwt_secret, mint
from crmkit.auth import Role


@click.command()
@click.option("--role", "role_name", required=True, type=click.Choice([r.value for r in Role]),
              help="Role the token carries.")
@click.option("--subject", help="The `sub` claim (an employee or app id); a demo subject by default.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True, max=24), default=float(DEMO_TOKEN_HOURS),
              show_default=True, help="Lifetime.")
@data_dir_option
@json_option
def token(role_name: str, subject: str | None, hours: float, data_dir: Path, as_json: bool) -> None:
    """Print a token signed with CRM_JWT_SECRET or the secret in DATA_DIR/secrets.env.

    Use it as `authorization: Bearer <token>`, e.g. `export CRM_TOKEN=$(crm token --role analyst)`.
    """
    role = Role(role_name)
    try:
        secret = jwt_secret(os.environ, workspace.DataDir(data_dir).secrets)
    except NoSecret as exc:
        output.fail(str(exc))
    issued = mint(secret=secret, role=role, subject=subject, hours=hours)
    if not as_json:
        click.echo(issued)
        return
    expires = datetime.now(UTC) + timedelta(hours=hours)
    output.print_json({"token": issued, "role": role.value, "subject": subject or DEMO_SUBJECTS[role],
                       "expires_at": expires.isoformat(timespec="seconds")})
