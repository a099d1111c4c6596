"""Gateway settings: the HTTP port and where each peer service listens. No database."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from crmkit.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Environment variables `CRM_GATEWAY_*` plus the shared `CRM_*` ones (JWT, deadlines, TLS).

    Peer targets are gRPC target strings: `host:port`, or `dns:///name:port` for a Kubernetes
    headless Service so that calls spread over every pod.
    """

    port: int = Field(default=8080, ge=0, le=65535, validation_alias="CRM_GATEWAY_PORT")
    profile_target: str = Field(default="127.0.0.1:50051", min_length=1,
                                validation_alias="CRM_GATEWAY_PROFILE_TARGET")
    segment_target: str = Field(default="127.0.0.1:50052", min_length=1,
                                validation_alias="CRM_GATEWAY_SEGMENT_TARGET")
    campaign_target: str = Field(default="127.0.0.1:50053", min_length=1,
                                 validation_alias="CRM_GATEWAY_CAMPAIGN_TARGET")
    feedback_target: str = Field(default="127.0.0.1:50054", min_length=1,
                                 validation_alias="CRM_GATEWAY_FEEDBACK_TARGET")
    risk_target: str = Field(default="127.0.0.1:50055", min_length=1,
                             validation_alias="CRM_GATEWAY_RISK_TARGET")
    # Seconds the gateway keeps serving after SIGTERM, `/readyz` answering 503, before it stops
    # listening: load balancers take a few seconds to stop routing to a terminating pod.
    drain_seconds: float = Field(default=5.0, ge=0, le=60, validation_alias="CRM_GATEWAY_DRAIN_SECONDS")
    # Largest request body, bytes; larger ones get 413 before they are read. A customer with
    # every attribute is tens of kilobytes. At most 8 MiB: a body the gateway accepts must fit
    # the services' 16 MiB gRPC messages (crmkit.server), with room to spare.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=8 * 1024 * 1024,
                                validation_alias="CRM_GATEWAY_MAX_BODY_BYTES")

    # Token buckets per client and route (limits.py): GET routes draw from the read limit, the
    # others from the write limit. Stated in the OpenAPI document.
    rate_limits_enabled: bool = Field(default=True, validation_alias="CRM_GATEWAY_RATE_LIMITS_ENABLED")
    rate_limit_read_per_second: float = Field(default=50.0, gt=0, le=100_000,
                                              validation_alias="CRM_GATEWAY_RATE_LIMIT_READ_PER_SECOND")
    rate_limit_read_burst: int = Field(default=100, ge=1, le=1_000_000,
                                       validation_alias="CRM_GATEWAY_RATE_LIMIT_READ_BURST")
    rate_limit_write_per_second: float = Field(default=10.0, gt=0, le=100_000,
                                               validation_alias="CRM_GATEWAY_RATE_LIMIT_WRITE_PER_SECOND")
    rate_limit_write_burst: int = Field(default=20, ge=1, le=1_000_000,
                                        validation_alias="CRM_GATEWAY_RATE_LIMIT_WRITE_BURST")
    # Failed authentications (401s) per client address (limits.py): over it, 429 instead of 401.
    rate_limit_auth_failure_per_second: float = Field(
        default=1.0, gt=0, le=100_000, validation_alias="CRM_GATEWAY_RATE_LIMIT_AUTH_FAILURE_PER_SECOND")
    rate_limit_auth_failure_burst: int = Field(default=20, ge=1, le=1_000_000,
                                               validation_alias="CRM_GATEWAY_RATE_LIMIT_AUTH_FAILURE_BURST")
    # Redis shared by the replicas for the buckets (`redis://host:6379/0`); each replica keeps its
    # own buckets when unset. A password in the URL makes it a secret: give it from a Secret.
    redis_url: str = Field(default="", validation_alias="CRM_GATEWAY_REDIS_URL")
    # The load balancers or ingress controllers whose X-Forwarded-For / X-Forwarded-Proto the
    # gateway believes (addresses or networks, comma-separated): behind them the client address of
    # the per-address limits is the caller's, not the ingress's. A header from anyone else is
    # ignored, so a caller cannot pick its own address; "*" (trust everyone) is refused for that reason.
    trusted_proxies: str = Field(default="127.0.0.1", validation_alias="CRM_GATEWAY_TRUSTED_PROXIES")

    # Deadline of each non-essential part of the customer 360 (routes/customer360.py), seconds: a
    # slower service is left out and named in the answer's `missing`.
    customer_360_part_deadline_seconds: float = Field(default=0.5, gt=0, le=30,
                                                      validation_alias="CRM_GATEWAY_360_PART_DEADLINE_SECONDS")
    # The interactive API page at /docs (routes/docs.py): unset means on in development and tests,
    # off in production.
    docs_enabled: bool | None = Field(default=None, validation_alias="CRM_GATEWAY_DOCS_ENABLED")

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8); "
                                 "list the proxies' addresses, never '*'") from None
        return ",".join(entries)

    @property
    def docs_page_enabled(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else self.is_development

    @property
    def peer_targets(self) -> dict[str, str]:
        """Peer name -> gRPC target, one channel each."""
        return {
            "profile": self.profile_target,
            "segment": self.segment_target,
            "campaign": self.campaign_target,
            "feedback": self.feedback_target,
            "risk": self.risk_target,
        }
