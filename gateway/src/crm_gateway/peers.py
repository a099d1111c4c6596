"""Channels to the peer services: one per peer per process, opened at start-up, closed at shutdown.

Every call gets the deadline from settings (`CRM_PEER_DEADLINE_SECONDS`), retries on
UNAVAILABLE only, and carries the trace context (see `crmkit.channels`). The end user's token
is passed explicitly per call (`crm_gateway.auth.forwarded`); the channels carry no ambient
identity, so a call that forgets it is refused by the service instead of running as someone else.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from fastapi import Request
from grpc_health.v1 import health_pb2_grpc

from crm.profile.v1 import profile_service_pb2, profile_service_pb2_grpc
from crm_gateway.settings import GatewaySettings
from crmkit.channels import open_channel

PROFILE_SERVICE = profile_service_pb2.DESCRIPTOR.services_by_name["ProfileService"].full_name


def _no_ambient_identity() -> str | None:
    return None


@dataclass
class Peers:
    """The channels and the stubs the routes use."""

    channels: dict[str, grpc.aio.Channel]
    profile: profile_service_pb2_grpc.ProfileServiceStub
    profile_health: health_pb2_grpc.HealthStub

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
            profile_health=health_pb2_grpc.HealthStub(channels["profile"]),
        )

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()


def get_peers(request: Request) -> Peers:
    """FastAPI dependency: the peers opened by the application's lifespan."""
    peers: Peers = request.app.state.peers
    return peers
