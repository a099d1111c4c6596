"""The ProfileService servicer, composed of one mixin per sub-domain (59 RPCs in all).

Each mixin maps its RPCs' protos to arguments, awaits one service call and maps the result
back; it reads the service objects it needs from attributes set here. An RPC no mixin defines
falls through to the generated base class, which answers UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

from crm.profile.v1 import profile_service_pb2_grpc
from crm_profile.api.customer_rpcs import CustomerRpcs


class ProfileServicer(CustomerRpcs, profile_service_pb2_grpc.ProfileServiceServicer):
    def __init__(self, **parts: Any) -> None:
        """`parts` are the sub-domains' service objects, named as the mixins read them
        (`customers=`, `feed=`, ...); each becomes the attribute `_<name>`."""
        for name, part in parts.items():
            setattr(self, f"_{name}", part)
