"""`crm run` refuses bad requests before starting anything."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner

from crm_cli.launcher import busy_ports
from crm_cli.main import cli


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unknown_component_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--only", "profile,billing", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert "unknown component 'billing'" in result.output
    assert not (tmp_path / "d").exists()


def test_a_bad_port_variable_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--only", "profile", "--data-dir", str(tmp_path)],
                                env={"CRM_PROFILE_PORT": "not-a-port"})
    assert result.exit_code == 1
    assert "CRM_PROFILE_PORT" in result.output


def test_lost_secrets_with_existing_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pgdata").mkdir()
    (tmp_path / "pgdata" / "PG_VERSION").write_text("16\n")
    result = CliRunner().invoke(cli, ["run", "--only", "profile", "--data-dir", str(tmp_path)],
                                env={"CRM_PROFILE_PORT": str(free_port())})
    assert result.exit_code == 1
    assert "secrets.env is missing" in result.output


def test_busy_ports_are_named() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert busy_ports({"profile": port}) == [f"profile ({port})"]
