"""Long-running operation RPCs of CampaignService (AIP-151): the kit's four, on campaign's messages."""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.audience.builds import KIND as AUDIENCE_BUILD
from crmkit.operations.rpcs import OperationRpcs as KitOperationRpcs

# The kinds of operation the campaign service runs (ListOperationsRequest.kind).
KINDS = (AUDIENCE_BUILD,)


class OperationRpcs(KitOperationRpcs):
    messages: ClassVar[ModuleType] = pb
