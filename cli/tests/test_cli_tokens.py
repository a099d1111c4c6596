"""`crm token` and the secret it signs with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from crm_cli import secrets_file, tokens
from crm_cli.main import cli
from crmkit.auth import Role, TokenVerifier


def verifier(secret: str) -> TokenVerifier:
    return TokenVerifier(secret=secret, issuer="crm-platform", audience="crm")


def test_the_environment_secret_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    loaded = secrets_file.ensure(path, ["profile"])
    assert tokens.jwt_secret({}, path) == loaded.values["CRM_JWT_SECRET"]
    assert tokens.jwt_secret({"CRM_JWT_SECRET": "from-env"}, path) == "from-env"
    with pytest.raises(tokens.NoSecret):
        tokens.jwt_secret({}, tmp_path / "absent.env")


def test_demo_tokens_cover_every_human_role() -> None:
    issued = tokens.demo_tokens("s" * 40)
    assert set(issued) == set(Role) - {Role.SERVICE}
    principal = verifier("s" * 40).verify(issued[Role.RELATIONSHIP_MANAGER])
    assert principal.roles == {Role.RELATIONSHIP_MANAGER} and principal.subject == "rm-1001"


def test_caller_token_prefers_crm_token(tmp_path: Path) -> None:
    assert tokens.caller_token({"CRM_TOKEN": "abc"}, tmp_path / "none") == "abc"
    minted = tokens.caller_token({"CRM_JWT_SECRET": "k" * 40}, tmp_path / "none")
    assert verifier("k" * 40).verify(minted).roles == {Role.ADMIN}


def test_crm_token_command_prints_a_verifiable_token(tmp_path: Path) -> None:
    secret = secrets_file.ensure(tmp_path / "secrets.env", ["profile"]).values["CRM_JWT_SECRET"]
    runner = CliRunner()
    result = runner.invoke(cli, ["token", "--role", "analyst", "--subject", "ana-9", "--hours", "2",
                                 "--data-dir", str(tmp_path)], env={"CRM_JWT_SECRET": ""})
    assert result.exit_code == 0, result.output
    principal = verifier(secret).verify(result.output.strip())
    assert principal.subject == "ana-9" and principal.roles == {Role.ANALYST}

    as_json = runner.invoke(cli, ["token", "--role", "admin", "--json", "--data-dir", str(tmp_path)],
                            env={"CRM_JWT_SECRET": ""})
    body = json.loads(as_json.output)
    assert body["role"] == "admin" and body["subject"] == "admin-0001"
    verifier(secret).verify(body["token"])


def test_crm_token_without_any_secret_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["token", "--role", "admin", "--data-dir", str(tmp_path)],
                                env={"CRM_JWT_SECRET": ""})
    assert result.exit_code == 1
    assert "crm run" in result.output


def test_crm_token_refuses_lifetimes_beyond_a_day(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["token", "--role", "admin", "--hours", "48", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
