"""Gateway settings: the HTTP port and where each peer service listens. No database."""

from __future__ import annotations

from pydantic import Field

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
