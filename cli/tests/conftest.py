"""CLI test fixtures."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _outside_pytest_basetemp() -> Iterator[Path]:
    # Run as root, pgserver runs PostgreSQL as its own `pgserver` user, which must traverse every
    # folder above the data directory; pytest keeps its temporary folders under a 0700 root, and
    # concurrent pytest runs reset that mode, so embedded clusters live in their own /tmp folder.
    folder = Path(tempfile.mkdtemp(prefix="crm-cli-test-"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_home() -> Iterator[Path]:
    """A fresh folder for an embedded PostgreSQL (or a `crm run` data directory)."""
    yield from _outside_pytest_basetemp()


@pytest.fixture(scope="module")
def pg_home_module() -> Iterator[Path]:
    yield from _outside_pytest_basetemp()
