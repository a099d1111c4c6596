"""Long-running operation RPCs of SegmentService (AIP-151): the kit's four, on segment's messages."""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

from crm.segment.v1 import segment_service_pb2 as pb
from crmkit.operations.rpcs import OperationRpcs as KitOperationRpcs

# The kinds of operation the segment service runs (ListOperationsRequest.kind).
KINDS = ("segment.materialise", "segment.rebuild_features", "segment.clustering", "segment.association",
         "segment.ltv_fit")


class OperationRpcs(KitOperationRpcs):
    messages: ClassVar[ModuleType] = pb
