"""Feedback settings: the SLA defaults and the encryption keys, without a database."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import pytest
from pydantic import ValidationError

from crm_feedback.app import FeedbackSettings

URL = "postgresql://localhost/feedback"
SECRET = "s" * 40


def settings(**values: object) -> FeedbackSettings:
    return FeedbackSettings(jwt_secret=SECRET, database_url=URL, **values)  # type: ignore[arg-type]


def test_defaults_match_the_contract() -> None:
    made = settings(env="development")
    assert made.port == 50054
    assert made.default_sla.respond_within == timedelta(hours=48)
    assert made.default_sla.resolve_within == timedelta(hours=48)


def test_sla_hours_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_FEEDBACK_DEFAULT_RESPOND_HOURS", "24")
    monkeypatch.setenv("CRM_FEEDBACK_DEFAULT_RESOLVE_HOURS", "120")
    made = settings(env="development")
    assert (made.default_sla.respond_within, made.default_sla.resolve_within) == (timedelta(hours=24),
                                                                                  timedelta(hours=120))


@pytest.mark.parametrize(("respond", "resolve"), [(0, 48), (48, 24), (24, 91 * 24)])
def test_inconsistent_sla_hours_stop_the_start(respond: int, resolve: int) -> None:
    with pytest.raises(ValidationError):
        settings(env="development", default_respond_hours=respond, default_resolve_hours=resolve)


def test_production_requires_encryption_keys() -> None:
    with pytest.raises(ValidationError, match="ENCRYPTION_KEYS"):
        settings(env="production")
    key = base64.b64encode(os.urandom(32)).decode()
    made = settings(env="production", encryption_keys=f"k1:{key}", active_key_id="k1")
    assert made.key_ring().active_key_id == "k1"


def test_a_malformed_key_ring_stops_the_start() -> None:
    with pytest.raises(ValidationError, match="CRM_FEEDBACK_ENCRYPTION_KEYS"):
        settings(env="development", encryption_keys="k1:c2hvcnQ=", active_key_id="k1")


def test_development_derives_a_stable_key_from_the_jwt_secret() -> None:
    ring = settings(env="development").key_ring()
    sealed = ring.seal("text", context="c")
    assert settings(env="development").key_ring().open(sealed, context="c") == "text"
