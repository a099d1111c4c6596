"""Long-running operation RPCs of RiskService (AIP-151): the kit's four, on risk's messages."""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.registry.model import KIND as TRAIN_KIND
from crm_risk.scoring.batch import KIND as SCORE_KIND
from crmkit.operations.rpcs import OperationRpcs as KitOperationRpcs

# The kinds of operation the risk service runs (ListOperationsRequest.kind).
KINDS = (TRAIN_KIND, SCORE_KIND)


class OperationRpcs(KitOperationRpcs):
    messages: ClassVar[ModuleType] = pb
