"""Derived-feature RPCs of ProfileService: proto -> arguments, one unit of work and one service
call in it, result -> proto. RecomputeFeatures launches its run once its unit of work has
committed (`crmkit.operations.Started`)."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc

from crm.profile.v1 import features_pb2
from crm_profile.api import feature_messages
from crm_profile.features.rules import FEATURES
from crm_profile.features.service import Features
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.resources import purpose_from
from crmkit.validation import Violations


class FeatureRpcs:
    """Read a customer's derived features; recompute them in batch."""

    _db: Database
    _features: Features

    async def GetCustomerFeatures(self, request: features_pb2.GetCustomerFeaturesRequest,
                                  context: grpc.aio.ServicerContext) -> features_pb2.GetCustomerFeaturesResponse:
        customer_id = FEATURES.parse_one(request.name)
        async with self._db.unit_of_work(read_only=True) as uow:
            features = await self._features.get(uow=uow, customer_id=customer_id,
                                                purpose=purpose_from(request.audit), actor=current_principal())
        return features_pb2.GetCustomerFeaturesResponse(features=feature_messages.to_proto(features))

    async def RecomputeFeatures(self, request: features_pb2.RecomputeFeaturesRequest,
                                context: grpc.aio.ServicerContext) -> features_pb2.RecomputeFeaturesResponse:
        bad = Violations()
        request_id = parse_request_id(request.request_id, violations=bad)
        changed_since = _changed_since(request, bad)
        async with self._db.unit_of_work() as uow:
            started = await self._features.start_recompute(
                uow=uow, customers=list(request.customers), changed_since=changed_since, request_id=request_id,
                request=request, actor=current_principal(), violations=bad)
        started.launch()
        return features_pb2.RecomputeFeaturesResponse(operation=started.operation)


def _changed_since(request: features_pb2.RecomputeFeaturesRequest, bad: Violations) -> datetime | None:
    if not request.HasField("changed_since"):
        return None
    try:
        return request.changed_since.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        bad.add("changed_since", "is not a valid timestamp")
        return None
