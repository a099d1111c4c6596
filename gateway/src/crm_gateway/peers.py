"""Channels to the peer services: one per peer per process, opened at start-up, closed at shutdown.

Every call gets the deadline from settings (`CRM_PEER_DEADLINE_SECONDS`), retries on
UNAVAILABLE only, and carries the trace context (see `crmkit.channels`). The end user's token
is passed explicitly per call (`crm_gateway.auth.forwarded`); the channels carry no ambient
identity, so a call that forgets it is refused by the service instead of running as someone else.

`ESSENTIAL` is the peer without which the gateway has nothing to serve (profile): `/readyz`
follows it. The others degrade the routes that use them (a partial customer 360, a 503 on their
own routes) and are reported by `/readyz` without taking the gateway out of rotation.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from fastapi import Request
from grpc_health.v1 import health_pb2_grpc

from crm.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from crm.feedback.v1 import feedback_service_pb2, feedback_service_pb2_grpc
from crm.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from crm.risk.v1 import risk_service_pb2, risk_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from crm_gateway.settings import GatewaySettings
from crmkit.channels import open_channel

PROFILE_SERVICE = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name
# Peer -> the gRPC service whose health names it (each service reports its own name).
SERVICE_NAMES = {
    "profile": PROFILE_SERVICE,
    "segment": segment_service_pb2.DESCRIPTOR.services_by_name["SegmentService"].full_name,
    "campaign": campaign_service_pb2.DESCRIPTOR.services_by_name["CampaignService"].full_name,
    "feedback": feedback_service_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name,
    "risk": risk_service_pb2.DESCRIPTOR.services_by_name["RiskService"].full_name,
}
ESSENTIAL = frozenset({"profile"})


def _no_ambient_identity() -> str | None:
    return None


@dataclass
class Peers:
    """The channels and the stubs the routes use."""

    channels: dict[str, grpc.aio.Channel]
    profile: profile_service_pb2_grpc.ProfileServiceStub
    segment: segment_service_pb2_grpc.SegmentServiceStub
    campaign: campaign_service_pb2_grpc.CampaignServiceStub
    feedback: feedback_service_pb2_grpc.FeedbackServiceStub
    risk: risk_service_pb2_grpc.RiskServiceStub
    health: dict[str, health_pb2_grpc.HealthStub]

    @classmethod
    def open(cls, settings: GatewaySettings) -> Peers:
        channels = {
            name: open_channel(target, deadline_seconds=settings.peer_deadline_seconds,
                               token_source=_no_ambient_identity, tls_ca_file=settings.tls_ca_file)
            for name, target in settings.peer_targets.items()
        }
        return cls(
            channels=channels,
            profile=profile_service_pb2_grpc.ProfileServiceStub(channels["profile"]),
            segment=segment_service_pb2_grpc.SegmentServiceStub(channels["segment"]),
            campaign=campaign_service_pb2_grpc.CampaignServiceStub(channels["campaign"]),
            feedback=feedback_service_pb2_grpc.FeedbackServiceStub(channels["feedback"]),
            risk=risk_service_pb2_grpc.RiskServiceStub(channels["risk"]),
            health={name: health_pb2_grpc.HealthStub(channel) for name, channel in channels.items()},
        )

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()


def get_peers(request: Request) -> Peers:
    """FastAPI dependency: the peers opened by the application's lifespan."""
    peers: Peers = request.app.state.peers
    return peers
