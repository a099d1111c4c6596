"""Classification RPCs of SegmentService: proto -> arguments, one unit of work and one service
call, result -> proto."""

from __future__ import annotations

import grpc

from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api import classification_messages as messages
from crm_segment.classifications.service import Classifications
from crm_segment.membership.rules import CUSTOMER_NAME
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.resources import purpose_from
from crmkit.validation import Violations
from crmkit.values import set_timestamps


class ClassificationRpcs:
    """A customer's value tier, activity layer, lifecycle stage and RFM; the tier definitions."""

    _db: Database
    _classifications: Classifications

    async def GetCustomerClassification(self, request: pb.GetCustomerClassificationRequest,
                                        context: grpc.aio.ServicerContext) -> pb.GetCustomerClassificationResponse:
        v = Violations()
        CUSTOMER_NAME.check(request.customer, "customer", v, required=True)
        purpose = purpose_from(request.audit, violations=v)
        v.raise_if_any()
        customer_id = CUSTOMER_NAME.id_in(request.customer)
        assert customer_id is not None  # checked above
        async with self._db.unit_of_work(read_only=True) as uow:
            found, service = await self._classifications.get(uow=uow, customer_id=customer_id, purpose=purpose,
                                                             actor=current_principal())
        response = pb.GetCustomerClassificationResponse(
            classification=messages.classification_to_proto(found, service))
        set_timestamps(response, features_as_of=found.features_as_of)
        return response

    async def ListValueTiers(self, request: pb.ListValueTiersRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListValueTiersResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._classifications.list_tiers(uow=uow, page_size=request.page_size,
                                                          page_token=request.page_token)
        return pb.ListValueTiersResponse(value_tiers=[messages.tier_to_proto(t) for t in page.items],
                                         next_page_token=page.next_page_token)

    async def UpdateValueTier(self, request: pb.UpdateValueTierRequest, context: grpc.aio.ServicerContext
                              ) -> pb.UpdateValueTierResponse:
        slug = messages.TIER_NAME.parse_one(request.value_tier.name, "value_tier.name", required=True)
        v = Violations()
        changes = messages.tier_to_domain(request.value_tier, v)
        v.raise_if_any()
        async with self._db.unit_of_work() as uow:
            saved = await self._classifications.update_tier(
                uow=uow, tier=messages.TIER_OF_SLUG[slug], changes=changes, paths=list(request.update_mask.paths),
                etag=request.value_tier.etag, actor=current_principal())
        return pb.UpdateValueTierResponse(value_tier=messages.tier_to_proto(saved))

    async def GetClassificationThresholds(self, request: pb.GetClassificationThresholdsRequest,
                                          context: grpc.aio.ServicerContext) -> pb.GetClassificationThresholdsResponse:
        messages.THRESHOLDS_NAME.parse(request.name, "name", required=True)
        async with self._db.unit_of_work(read_only=True) as uow:
            stored = await self._classifications.get_thresholds(uow=uow)
        return pb.GetClassificationThresholdsResponse(thresholds=messages.thresholds_to_proto(stored))

    async def UpdateClassificationThresholds(self, request: pb.UpdateClassificationThresholdsRequest,
                                             context: grpc.aio.ServicerContext
                                             ) -> pb.UpdateClassificationThresholdsResponse:
        messages.THRESHOLDS_NAME.parse(request.thresholds.name, "thresholds.name", required=True)
        paths = list(request.update_mask.paths)
        v = Violations()
        changes = messages.thresholds_to_domain(request.thresholds, paths, v)
        v.raise_if_any()
        async with self._db.unit_of_work() as uow:
            saved = await self._classifications.update_thresholds(
                uow=uow, changes=changes, paths=paths, etag=request.thresholds.etag, actor=current_principal())
        return pb.UpdateClassificationThresholdsResponse(thresholds=messages.thresholds_to_proto(saved))
