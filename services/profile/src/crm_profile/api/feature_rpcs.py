"""Derived-feature RPCs of ProfileService: proto -> arguments, one service call, result -> proto."""

from __future__ import annotations

from datetime import UTC

import grpc

from crm.profile.v1 import features_pb2
from crm_profile.api import feature_messages
from crm_profile.features.rules import FEATURES
from crm_profile.features.service import Features
from crmkit.auth import current_principal
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.resources import purpose_from


class FeatureRpcs:
    """Read a customer's derived features; recompute them in batch."""

    _features: Features

    async def GetCustomerFeatures(self, request: features_pb2.GetCustomerFeaturesRequest,
                                  context: grpc.aio.ServicerContext) -> features_pb2.GetCustomerFeaturesResponse:
        features = await self._features.get(customer_id=FEATURES.parse_one(request.name),
                                            purpose=purpose_from(request.audit), actor=current_principal())
        return features_pb2.GetCustomerFeaturesResponse(features=feature_messages.to_proto(features))

    async def RecomputeFeatures(self, request: features_pb2.RecomputeFeaturesRequest,
                                context: grpc.aio.ServicerContext) -> features_pb2.RecomputeFeaturesResponse:
        changed_since = None
        if request.HasField("changed_since"):
            try:
                changed_since = request.changed_since.ToDatetime(tzinfo=UTC)
            except (ValueError, OverflowError) as exc:
                raise InvalidArgument([FieldViolation("changed_since", "is not a valid timestamp")]) from exc
        operation = await self._features.start_recompute(
            customers=list(request.customers), changed_since=changed_since, request_id=request.request_id,
            actor=current_principal())
        return features_pb2.RecomputeFeaturesResponse(operation=operation)
