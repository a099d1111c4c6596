"""Settings shared by every service: environment variables prefixed `CRM_`, read once in main().

Each service subclasses `GrpcServiceSettings` (the gateway `ServiceSettings`) and adds its own
fields, naming their variables explicitly (`CRM_PROFILE_DATABASE_URL`, `CRM_PROFILE_PORT`).
Settings are built in `main()` and passed down; nothing reads the environment at import time.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crmkit.auth import MAX_TOKEN_LIFETIME_SECONDS

# Secrets that a template or a tutorial would carry; refused outside development and tests.
_PLACEHOLDER_SECRETS = frozenset({"", "secret", "changeme", "change-me", "dev", "development", "password"})
MIN_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseSettings):
    """What every service needs; a subclass adds `database_url`, `port` and its own knobs."""

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore", frozen=True, populate_by_name=True)

    env: Environment = Environment.PRODUCTION
    host: str = "0.0.0.0"  # noqa: S104 - a server in a pod listens on every interface
    log_level: str = "INFO"
    # HS256 key that verifies the callers' JWTs (the gateway forwards the end user's token).
    jwt_secret: SecretStr
    jwt_issuer: str = "crm-platform"
    jwt_audience: str = "crm"
    # Longest accepted token lifetime (`exp - iat`), seconds; longer-lived tokens are refused
    # (UNAUTHENTICATED, reason TOKEN_LIFETIME_TOO_LONG) by every service and the gateway alike.
    jwt_max_token_lifetime_seconds: int = Field(default=MAX_TOKEN_LIFETIME_SECONDS, ge=60, le=7 * 24 * 3600)
    # Seconds an in-flight call may take to finish after SIGTERM before it is cancelled.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=120)
    # Seconds a gRPC server keeps serving after SIGTERM with its health at NOT_SERVING, before it stops
    # taking calls: the callers' channels watch that health (crmkit.channels) and move new calls to
    # the other replicas, so none lands on a server that is closing.
    shutdown_drain_seconds: float = Field(default=1.0, ge=0, le=30)
    # Deadline for calls to peer services, seconds.
    peer_deadline_seconds: float = Field(default=2.0, gt=0, le=60)
    # Seconds between database reachability probes that drive the health status.
    health_probe_seconds: float = Field(default=5.0, gt=0, le=300)
    # TLS for the gRPC listener and for channels to peers: PEM file paths; plaintext when unset
    # (inside a mesh that terminates mTLS, or on one machine).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_ca_file: str | None = None
    # One JSON line per served RPC (method, code, duration, trace id).
    access_log: bool = True
    db_pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @model_validator(mode="after")
    def _real_secrets_outside_development(self) -> ServiceSettings:
        if self.env is Environment.PRODUCTION:
            for name, value in self.secret_fields().items():
                raw = value.get_secret_value()
                if raw.lower() in _PLACEHOLDER_SECRETS or len(raw) < MIN_SECRET_LENGTH:
                    raise ValueError(
                        f"{self.variable_of(name)} is a placeholder or shorter than {MIN_SECRET_LENGTH} "
                        "characters; set a real secret (from a Kubernetes Secret) or CRM_ENV=development"
                    )
        return self

    @classmethod
    def variable_of(cls, field: str) -> str:
        """The environment variable that sets `field` (its alias, or CRM_<FIELD>)."""
        alias = cls.model_fields[field].validation_alias
        return alias if isinstance(alias, str) else f"CRM_{field.upper()}"

    def secret_fields(self) -> dict[str, SecretStr]:
        return {
            name: value for name, value in self.__dict__.items() if isinstance(value, SecretStr)
        }

    def derived_key(self, purpose: str) -> bytes:
        """A key for `purpose` (e.g. page tokens) derived from the JWT secret: one secret to manage."""
        return hmac.new(self.jwt_secret.get_secret_value().encode(), purpose.encode(), hashlib.sha256).digest()

    @property
    def is_development(self) -> bool:
        return self.env is not Environment.PRODUCTION



class GrpcServiceSettings(ServiceSettings):
    """A gRPC service with its own database. Each service redeclares both fields with its own
    variables (`CRM_<SERVICE>_DATABASE_URL`, `CRM_<SERVICE>_PORT`) and its default port; declaring
    them here lets the kit's start-up read them with their types."""

    database_url: str
    port: int = Field(ge=0, le=65535)

def async_database_url(url: str) -> str:
    """The SQLAlchemy asyncpg form of a PostgreSQL URL (accepts plain `postgresql://`)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


def plain_database_url(url: str) -> str:
    """The libpq form of a PostgreSQL URL, as asyncpg takes it."""
    return "postgresql://" + async_database_url(url).removeprefix("postgresql+asyncpg://")
