"""Long-running operation RPCs of FeedbackService (AIP-151): the kit's four, on feedback's messages."""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar

from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.classification.model import KIND as TRAIN_KIND
from crmkit.operations.rpcs import OperationRpcs as KitOperationRpcs

# The kinds of operation the feedback service runs (ListOperationsRequest.kind).
KINDS = (TRAIN_KIND,)


class OperationRpcs(KitOperationRpcs):
    messages: ClassVar[ModuleType] = pb
