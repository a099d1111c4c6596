"""The ProfileService servicer, composed of one mixin per sub-domain (59 RPCs in all).

Each mixin maps its RPCs' protos to arguments, awaits one service call and maps the result
back; it reads the service objects it needs from attributes set here. An RPC no mixin defines
falls through to the generated base class, which answers UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

from crm.profile.v1 import profile_service_pb2_grpc
from crm_profile.api.attribute_rpcs import AttributeRpcs
from crm_profile.api.consent_rpcs import ConsentRpcs
from crm_profile.api.customer_rpcs import CustomerRpcs
from crm_profile.api.event_rpcs import EventRpcs
from crm_profile.api.feature_rpcs import FeatureRpcs
from crm_profile.api.history_rpcs import HistoryRpcs
from crm_profile.api.holding_rpcs import HoldingRpcs
from crm_profile.api.identity_rpcs import IdentityRpcs
from crm_profile.api.import_rpcs import ImportRpcs
from crm_profile.api.operation_rpcs import OperationRpcs
from crm_profile.api.privacy_rpcs import PrivacyRpcs
from crm_profile.api.quality_rpcs import QualityRpcs
from crm_profile.api.relationship_rpcs import RelationshipRpcs


class ProfileServicer(CustomerRpcs, AttributeRpcs, HistoryRpcs, QualityRpcs, HoldingRpcs, EventRpcs,
                      ConsentRpcs, IdentityRpcs, RelationshipRpcs, ImportRpcs, OperationRpcs, FeatureRpcs,
                      PrivacyRpcs, profile_service_pb2_grpc.ProfileServiceServicer):
    def __init__(self, **parts: Any) -> None:
        """`parts` are the sub-domains' service objects, named as the mixins read them
        (`customers=`, `feed=`, ...); each becomes the attribute `_<name>`."""
        for name, part in parts.items():
            setattr(self, f"_{name}", part)
