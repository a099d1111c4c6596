"""The service table and each child's environment: external databases and ports win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crm_cli.platform import (
    COMPONENTS,
    PlatformError,
    address,
    build_env,
    component,
    needs_embedded_database,
    resolve_port,
    resolve_ports,
    select,
)

SECRETS = {
    "CRM_JWT_SECRET": "jwt-from-file",
    "CRM_PROFILE_ENCRYPTION_KEYS": "dev1:a2V5",
    "CRM_PROFILE_ACTIVE_KEY_ID": "dev1",
    "CRM_PROFILE_BLIND_INDEX_KEY": "aW5kZXg=",
}
EMBEDDED = "postgresql://crm_profile:pw@/crm_profile?host=/tmp/x"


def env_of(name: str, environ: dict[str, str], database_url: str | None = EMBEDDED) -> dict[str, str]:
    target = component(name)
    return build_env(target, environ=environ, secrets=SECRETS, database_url=database_url,
                     ports=resolve_ports(COMPONENTS, environ))


def test_default_ports_are_the_design_ones() -> None:
    assert resolve_ports(COMPONENTS, {}) == {
        "profile": 50051, "segment": 50052, "campaign": 50053, "feedback": 50054, "risk": 50055, "gateway": 8080,
    }


def test_ports_are_overridable_by_environment() -> None:
    environ = {"CRM_PROFILE_PORT": "6051", "CRM_GATEWAY_PORT": "9090"}
    assert resolve_port(component("profile"), environ) == 6051
    assert env_of("profile", environ)["CRM_PROFILE_PORT"] == "6051"
    gateway = env_of("gateway", environ, database_url=None)
    assert gateway["CRM_GATEWAY_PORT"] == "9090"
    assert gateway["CRM_GATEWAY_PROFILE_TARGET"] == "127.0.0.1:6051"
    assert gateway["CRM_GATEWAY_RISK_TARGET"] == "127.0.0.1:50055"
    assert address(component("gateway"), 9090) == "http://127.0.0.1:9090"


def test_services_follow_a_moved_peer_to_its_port_and_a_users_target_wins() -> None:
    environ = {"CRM_PROFILE_PORT": "6051", "CRM_FEEDBACK_PORT": "6054", "CRM_RISK_PROFILE_TARGET": "profile.bank:443"}
    segment = env_of("segment", environ)
    assert segment["CRM_SEGMENT_PROFILE_TARGET"] == "127.0.0.1:6051"
    assert segment["CRM_SEGMENT_FEEDBACK_TARGET"] == "127.0.0.1:6054"
    assert env_of("campaign", environ)["CRM_CAMPAIGN_SEGMENT_TARGET"] == "127.0.0.1:50052"
    assert env_of("risk", environ)["CRM_RISK_PROFILE_TARGET"] == "profile.bank:443"
    assert "CRM_PROFILE_PROFILE_TARGET" not in env_of("profile", environ)  # not its own peer


@pytest.mark.parametrize("value", ["http", "0", "70000", "-1"])
def test_a_bad_port_is_refused_with_the_variable_named(value: str) -> None:
    with pytest.raises(PlatformError, match="CRM_RISK_PORT"):
        resolve_port(component("risk"), {"CRM_RISK_PORT": value})


def test_two_components_on_one_port_are_refused() -> None:
    with pytest.raises(PlatformError, match="port 50051"):
        resolve_ports(COMPONENTS, {"CRM_RISK_PORT": "50051"})


def test_embedded_database_url_is_used_by_default() -> None:
    env = env_of("profile", {})
    assert env["CRM_PROFILE_DATABASE_URL"] == EMBEDDED
    assert env["CRM_ENV"] == "development"
    assert env["CRM_HOST"] == "127.0.0.1"
    assert env["CRM_JWT_SECRET"] == "jwt-from-file"
    assert env["CRM_PROFILE_ENCRYPTION_KEYS"] == SECRETS["CRM_PROFILE_ENCRYPTION_KEYS"]


def test_an_external_database_url_is_respected() -> None:
    environ = {"CRM_PROFILE_DATABASE_URL": "postgresql://bank@db.internal/profile"}
    assert [c.name for c in needs_embedded_database(select("profile,segment"), environ)] == ["segment"]
    assert env_of("profile", environ)["CRM_PROFILE_DATABASE_URL"] == "postgresql://bank@db.internal/profile"


def test_the_users_environment_wins_except_crm_env() -> None:
    environ = {"CRM_JWT_SECRET": "jwt-from-env", "CRM_ENV": "production", "CRM_HOST": "10.1.2.3"}
    env = env_of("segment", environ)
    assert env["CRM_JWT_SECRET"] == "jwt-from-env"
    assert env["CRM_HOST"] == "10.1.2.3"
    assert env["CRM_ENV"] == "development"


def test_a_child_does_not_see_other_components_secrets_or_databases() -> None:
    environ = {"CRM_PROFILE_DATABASE_URL": "postgresql://p", "CRM_PROFILE_BLIND_INDEX_KEY": "k", "PATH": "/bin"}
    env = env_of("segment", environ, database_url="postgresql://s")
    assert env["CRM_SEGMENT_DATABASE_URL"] == "postgresql://s"
    assert env["PATH"] == "/bin"
    assert not {"CRM_PROFILE_DATABASE_URL", "CRM_PROFILE_BLIND_INDEX_KEY", "CRM_PROFILE_ENCRYPTION_KEYS"} & set(env)


def test_gateway_gets_no_database() -> None:
    env = env_of("gateway", {}, database_url=EMBEDDED)
    assert not any(k.endswith("_DATABASE_URL") for k in env)


def test_select_keeps_start_order_and_refuses_unknown_names() -> None:
    assert [c.name for c in select("gateway, profile")] == ["profile", "gateway"]
    assert len(select(None)) == 6
    with pytest.raises(PlatformError, match="unknown component 'billing'"):
        select("profile,billing")


def test_service_commands() -> None:
    profile, gateway = component("profile"), component("gateway")
    assert profile.argv("migrate")[1:] == ["-m", "crm_profile", "migrate"]
    assert gateway.argv("serve")[1:] == ["-m", "crm_gateway"]
    assert profile.database_name == "crm_profile"


def test_crm_run_configures_campaigns_channels_for_local_use(tmp_path: Path) -> None:
    target = component("campaign")
    env = build_env(target, environ={}, secrets=SECRETS, database_url=EMBEDDED,
                    ports=resolve_ports(COMPONENTS, {}), data_root=tmp_path / ".crm")
    templates = json.loads(env["CRM_CAMPAIGN_TEMPLATES"])
    assert "sms-td-renewal" in templates["SMS"] and "app-td-banner" in templates["MOBILE_APP"]
    assert json.loads(env["CRM_CAMPAIGN_CHANNEL_ADAPTERS"]) == {channel: "file" for channel in templates}
    assert env["CRM_CAMPAIGN_DISPATCH_DIRECTORY"] == str(tmp_path / ".crm" / "dispatch")
    # Other components get none of it.
    profile = build_env(component("profile"), environ={}, secrets=SECRETS, database_url=EMBEDDED,
                        ports=resolve_ports(COMPONENTS, {}), data_root=tmp_path / ".crm")
    assert not {"CRM_CAMPAIGN_TEMPLATES", "CRM_CAMPAIGN_CHANNEL_ADAPTERS"} & set(profile)


def test_the_local_campaign_configuration_is_one_campaign_accepts(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    app = pytest.importorskip("crm_campaign.app", reason="the campaign service is not installed here")
    env = build_env(component("campaign"), environ={}, secrets=SECRETS, database_url=EMBEDDED,
                    ports=resolve_ports(COMPONENTS, {}), data_root=tmp_path)
    for name, value in env.items():
        if name.startswith("CRM_"):
            monkeypatch.setenv(name, value)
    settings = app.CampaignSettings()
    assert settings.channel_adapters["SMS"] == "file"
    assert settings.dispatch_directory == str(tmp_path / "dispatch")


@pytest.mark.parametrize("users", [
    {"CRM_CAMPAIGN_TEMPLATES": '{"SMS": ["bank-sms-1"]}'},
    {"CRM_CAMPAIGN_CHANNEL_ADAPTERS": '{"EMAIL": "webhook"}'},
    {"CRM_CAMPAIGN_DISPATCH_DIRECTORY": "/srv/outbox"},
])
def test_the_users_campaign_channel_configuration_is_left_alone(tmp_path: Path, users: dict[str, str]) -> None:
    env = build_env(component("campaign"), environ=users, secrets=SECRETS, database_url=EMBEDDED,
                    ports=resolve_ports(COMPONENTS, users), data_root=tmp_path)
    for var in ("CRM_CAMPAIGN_TEMPLATES", "CRM_CAMPAIGN_CHANNEL_ADAPTERS", "CRM_CAMPAIGN_DISPATCH_DIRECTORY"):
        assert env.get(var) == users.get(var)


def test_without_a_data_folder_campaign_gets_no_demo_channels() -> None:
    assert "CRM_CAMPAIGN_TEMPLATES" not in env_of("campaign", {})
