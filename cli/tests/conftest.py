"""CLI test fixtures."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crm_cli.main import cli
from crmkit.logs import logs_to_stderr
from crmkit.testing import TEST_JWT_SECRET, DatabaseFactory, free_port, service_process


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


@pytest.fixture(scope="session", autouse=True)
def _log_lines_off_the_commands_stdout() -> Iterator[None]:
    """The commands run in this process: their stdout is what a script reads, so the test
    process's own log lines go to stderr meanwhile."""
    with logs_to_stderr():
        yield


@pytest.fixture
def pg_home() -> Iterator[Path]:
    """A fresh folder for an embedded PostgreSQL (or a `crm run` data directory)."""
    yield from _outside_pytest_basetemp()


@pytest.fixture(scope="module")
def pg_home_module() -> Iterator[Path]:
    yield from _outside_pytest_basetemp()


@asynccontextmanager
async def _profile_process(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                           name: str) -> AsyncIterator[int]:
    """A profile service process on a database of its own (`name`); its port."""
    port = free_port()
    env = {
        "CRM_ENV": "test",
        "CRM_JWT_SECRET": TEST_JWT_SECRET,
        "CRM_PROFILE_DATABASE_URL": await database_factory.create(name),
        "CRM_PROFILE_PORT": str(port),
        "CRM_HOST": "127.0.0.1",
        "CRM_PROFILE_ENCRYPTION_KEYS": f"k1:{base64.b64encode(os.urandom(32)).decode()}",
        "CRM_PROFILE_ACTIVE_KEY_ID": "k1",
        "CRM_PROFILE_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    log_path = tmp_path_factory.mktemp(name) / "profile.log"
    async with service_process("crm_profile", env, port=port, log_path=log_path):
        yield port


@pytest.fixture(scope="session")
async def profile_port(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
                       ) -> AsyncIterator[int]:
    """The profile service as a real process on a database of its own: the CLI reaches it only
    through its gRPC contract, at the port `crm` finds in CRM_PROFILE_PORT."""
    async with _profile_process(database_factory, tmp_path_factory, "cli_profile") as port:
        yield port


@pytest.fixture(scope="session")
async def second_profile_port(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
                              ) -> AsyncIterator[int]:
    """Another profile process with a database of its own, to load the same data a second way."""
    async with _profile_process(database_factory, tmp_path_factory, "cli_profile_second") as port:
        yield port


@pytest.fixture
def crm(profile_port: int) -> Callable[..., Result]:
    """`crm(*args)`: the command line, in this process, against the profile process above, with a
    token minted from the test secret (as `crm` does when CRM_TOKEN is unset)."""
    env = {"CRM_PROFILE_PORT": str(profile_port), "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_TOKEN": None,
           "COLUMNS": "200"}  # wide enough that no table cell wraps

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
async def segment_port(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                       profile_port: int) -> AsyncIterator[int]:
    """The segment service as a real process following the profile process's feed."""
    port = free_port()
    env = {
        "CRM_ENV": "test",
        "CRM_JWT_SECRET": TEST_JWT_SECRET,
        "CRM_SEGMENT_DATABASE_URL": await database_factory.create("cli_segment"),
        "CRM_SEGMENT_PORT": str(port),
        "CRM_SEGMENT_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
        "CRM_SEGMENT_PROFILE_FEED_MAX_BACKOFF_SECONDS": "0.5",
        "CRM_HOST": "127.0.0.1",
    }
    log_path = tmp_path_factory.mktemp("segment") / "segment.log"
    async with service_process("crm_segment", env, port=port, log_path=log_path):
        yield port


@pytest.fixture
def crm_platform(profile_port: int, segment_port: int) -> Callable[..., Result]:
    """`crm(*args)` against the profile and segment processes."""
    env = {"CRM_PROFILE_PORT": str(profile_port), "CRM_SEGMENT_PORT": str(segment_port),
           "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_TOKEN": None, "COLUMNS": "200"}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
async def feedback_port(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                        profile_port: int) -> AsyncIterator[int]:
    """The feedback service as a real process following the profile process's feed (segment is
    left unreachable: feedback serves without it)."""
    port = free_port()
    env = {
        "CRM_ENV": "test",
        "CRM_JWT_SECRET": TEST_JWT_SECRET,
        "CRM_FEEDBACK_DATABASE_URL": await database_factory.create("cli_feedback"),
        "CRM_FEEDBACK_PORT": str(port),
        "CRM_FEEDBACK_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
        "CRM_FEEDBACK_SEGMENT_TARGET": f"127.0.0.1:{free_port()}",
        "CRM_FEEDBACK_PEER_FEED_MAX_BACKOFF_SECONDS": "0.5",
        "CRM_FEEDBACK_SLA_CLOCK_SECONDS": "1",
        "CRM_HOST": "127.0.0.1",
    }
    log_path = tmp_path_factory.mktemp("feedback") / "feedback.log"
    async with service_process("crm_feedback", env, port=port, log_path=log_path):
        yield port


@pytest.fixture
def crm_feedback(profile_port: int, feedback_port: int) -> Callable[..., Result]:
    """`crm(*args)` against the profile and feedback processes."""
    env = {"CRM_PROFILE_PORT": str(profile_port), "CRM_FEEDBACK_PORT": str(feedback_port),
           "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_TOKEN": None, "COLUMNS": "250"}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
async def campaign_port(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                        profile_port: int, segment_port: int, feedback_port: int) -> AsyncIterator[int]:
    """The campaign service as a real process following profile's, segment's and feedback's feeds,
    sending to files in a temporary folder."""
    port = free_port()
    folder = tmp_path_factory.mktemp("campaign")
    env = {
        "CRM_ENV": "test",
        "CRM_JWT_SECRET": TEST_JWT_SECRET,
        "CRM_CAMPAIGN_DATABASE_URL": await database_factory.create("cli_campaign"),
        "CRM_CAMPAIGN_PORT": str(port),
        "CRM_CAMPAIGN_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
        "CRM_CAMPAIGN_SEGMENT_TARGET": f"127.0.0.1:{segment_port}",
        "CRM_CAMPAIGN_FEEDBACK_TARGET": f"127.0.0.1:{feedback_port}",
        "CRM_CAMPAIGN_FEED_MAX_BACKOFF_SECONDS": "0.5",
        "CRM_CAMPAIGN_DISPATCH_DIRECTORY": str(folder / "dispatches"),
        "CRM_CAMPAIGN_TEMPLATES": '{"SMS": ["sms-td-renewal"], "MOBILE_APP": ["app-td-banner"]}',
        "CRM_HOST": "127.0.0.1",
    }
    async with service_process("crm_campaign", env, port=port, log_path=folder / "campaign.log"):
        yield port


@pytest.fixture
def crm_all(profile_port: int, segment_port: int, feedback_port: int, campaign_port: int) -> Callable[..., Result]:
    """`crm(*args)` against profile, segment, feedback and campaign processes."""
    env = {"CRM_PROFILE_PORT": str(profile_port), "CRM_SEGMENT_PORT": str(segment_port),
           "CRM_FEEDBACK_PORT": str(feedback_port), "CRM_CAMPAIGN_PORT": str(campaign_port),
           "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_TOKEN": None, "COLUMNS": "250"}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def risk_training_dir() -> Iterator[Path]:
    """The risk process's training directory (CRM_RISK_TRAINING_DIR): tests write snapshot files here."""
    yield from _outside_pytest_basetemp()


@pytest.fixture(scope="session")
async def risk_port(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory,
                    profile_port: int, risk_training_dir: Path) -> AsyncIterator[int]:
    """The risk service as a real process following profile's feed (feedback left unreachable: risk
    serves without it), training in worker processes from `risk_training_dir`."""
    port = free_port()
    env = {
        "CRM_ENV": "test",
        "CRM_JWT_SECRET": TEST_JWT_SECRET,
        "CRM_RISK_DATABASE_URL": await database_factory.create("cli_risk"),
        "CRM_RISK_PORT": str(port),
        "CRM_RISK_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
        "CRM_RISK_FEEDBACK_TARGET": f"127.0.0.1:{free_port()}",
        "CRM_RISK_PROFILE_FEED_MAX_BACKOFF_SECONDS": "0.5",
        "CRM_RISK_FEED_POLL_SECONDS": "0.1",
        "CRM_RISK_OPERATION_POLL_SECONDS": "0.1",
        "CRM_RISK_TRAINING_DIR": str(risk_training_dir),
        "CRM_RISK_TRAINING_CV_FOLDS": "0",
        "CRM_HOST": "127.0.0.1",
    }
    log_path = tmp_path_factory.mktemp("risk") / "risk.log"
    async with service_process("crm_risk", env, port=port, log_path=log_path):
        yield port


@pytest.fixture
def crm_risk(profile_port: int, risk_port: int) -> Callable[..., Result]:
    """`crm(*args)` against the profile and risk processes."""
    env = {"CRM_PROFILE_PORT": str(profile_port), "CRM_RISK_PORT": str(risk_port),
           "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_TOKEN": None, "COLUMNS": "250"}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke
