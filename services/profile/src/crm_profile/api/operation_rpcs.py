"""Long-running operation RPCs of ProfileService (AIP-151): the kit's four, on profile's messages."""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

from crm.profile.v1 import operations_pb2
from crmkit.operations.rpcs import OperationRpcs as KitOperationRpcs

# The kinds of operation the profile service runs (ListOperationsRequest.kind).
KINDS = ("profile.import", "profile.recompute_features", "profile.rotate_key", "profile.retention_purge")


class OperationRpcs(KitOperationRpcs):
    messages: ClassVar[ModuleType] = operations_pb2
