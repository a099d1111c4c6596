"""secrets.env: created private, reused unchanged, completed when a key is missing."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from crm_cli import secrets_file
from crmkit.crypto import BlindIndex, KeyRing

SERVICES = ["profile", "segment", "campaign", "feedback", "risk"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_a_private_file_with_every_secret(tmp_path: Path) -> None:
    path = tmp_path / ".crm" / "secrets.env"
    previous = os.umask(0)  # even a permissive umask must not widen the file
    try:
        loaded = secrets_file.ensure(path, SERVICES)
    finally:
        os.umask(previous)
    assert loaded.created
    assert mode(path) == 0o600
    values = secrets_file.read(path)
    assert values == loaded.values
    assert len(values["CRM_JWT_SECRET"]) >= 32
    for service in SERVICES:
        assert len(values[secrets_file.db_password_var(service)]) >= 24
    ring = KeyRing.parse(values["CRM_PROFILE_ENCRYPTION_KEYS"], active_key_id=values["CRM_PROFILE_ACTIVE_KEY_ID"])
    assert ring.open(ring.seal("x", context="c"), context="c") == "x"
    BlindIndex(base64.b64decode(values["CRM_PROFILE_BLIND_INDEX_KEY"]))


def test_a_second_call_reuses_the_file_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    first = secrets_file.ensure(path, SERVICES)
    text = path.read_text()
    second = secrets_file.ensure(path, SERVICES)
    assert not second.created and not second.added
    assert second.values == first.values
    assert path.read_text() == text


def test_missing_keys_are_added_and_existing_values_kept(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    first = secrets_file.ensure(path, ["profile"])
    loaded = secrets_file.ensure(path, ["profile", "risk"])
    assert loaded.added == ("CRM_RISK_DB_PASSWORD",)
    assert {k: loaded.values[k] for k in first.values} == first.values
    assert secrets_file.read(path) == loaded.values
    assert mode(path) == 0o600


def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    secrets_file.ensure(path, SERVICES)
    path.chmod(0o644)
    loaded = secrets_file.ensure(path, SERVICES)
    assert loaded.tightened
    assert mode(path) == 0o600


def test_the_file_can_be_sourced_by_a_shell_and_parsed_back() -> None:
    values = secrets_file.generate(SERVICES)
    text = secrets_file.render(values)
    assert secrets_file.parse(text) == values
    assert secrets_file.parse("# comment\n\nexport A=b=c\n") == {"A": "b=c"}
