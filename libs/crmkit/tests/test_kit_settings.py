"""Settings refuse placeholder secrets outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crmkit.settings import ServiceSettings, async_database_url


def test_production_refuses_a_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_JWT_SECRET", "changeme")
    with pytest.raises(ValidationError, match="CRM_JWT_SECRET"):
        ServiceSettings(env="production")


def test_development_accepts_a_short_secret_and_production_a_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_JWT_SECRET", "dev")
    assert ServiceSettings(env="development").is_development
    monkeypatch.setenv("CRM_JWT_SECRET", "r" * 48)
    assert not ServiceSettings(env="production").is_development


def test_a_missing_secret_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="jwt_secret"):
        ServiceSettings()


def test_database_urls_are_normalised_to_asyncpg() -> None:
    assert async_database_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    with pytest.raises(ValueError, match="postgresql://"):
        async_database_url("mysql://u@h/db")


def test_the_error_names_a_service_variable_by_its_own_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import Field, SecretStr

    class KeyedSettings(ServiceSettings):
        encryption_keys: SecretStr = Field(validation_alias="CRM_DEMO_ENCRYPTION_KEYS")

    monkeypatch.setenv("CRM_JWT_SECRET", "r" * 48)
    monkeypatch.setenv("CRM_DEMO_ENCRYPTION_KEYS", "short")
    with pytest.raises(ValidationError, match="CRM_DEMO_ENCRYPTION_KEYS"):
        KeyedSettings(env="production")
