"""Long-running operation RPCs of CampaignService (AIP-151): the kit's four, on campaign's messages."""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.audience.builds import KIND as AUDIENCE_BUILD
from crm_campaign.contacts.service import KIND as CONTACT_IMPORT
from crm_campaign.propensity.service import KIND as PROPENSITY_TRAINING
from crmkit.operations.rpcs import OperationRpcs as KitOperationRpcs

# The kinds of operation the campaign service runs (ListOperationsRequest.kind).
KINDS = (AUDIENCE_BUILD, CONTACT_IMPORT, PROPENSITY_TRAINING)


class OperationRpcs(KitOperationRpcs):
    messages: ClassVar[ModuleType] = pb
