"""Lifetime-value RPCs of SegmentService: proto -> arguments, one unit of work and one service
call, result -> proto. FitLifetimeValueModel launches its run once its unit of work committed."""

from __future__ import annotations

import grpc

from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.api import ltv_messages as messages
from crm_segment.clv import rules
from crm_segment.clv.service import LifetimeValues
from crm_segment.membership.rules import CUSTOMER_NAME
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.resources import purpose_from
from crmkit.validation import Violations


class LifetimeValueRpcs:
    """Fit a lifetime-value model, read it, predict a customer's value."""

    _db: Database
    _lifetime_values: LifetimeValues

    async def FitLifetimeValueModel(self, request: pb.FitLifetimeValueModelRequest,
                                    context: grpc.aio.ServicerContext) -> pb.FitLifetimeValueModelResponse:
        settings = messages.fit_settings(request, today=self._lifetime_values.now())
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            started, model = await self._lifetime_values.start_fit(
                uow=uow, settings=settings, request_id=request_id, request=request, actor=current_principal())
        started.launch()
        return pb.FitLifetimeValueModelResponse(operation=started.operation, lifetime_value_model=model)

    async def GetLifetimeValueModel(self, request: pb.GetLifetimeValueModelRequest,
                                    context: grpc.aio.ServicerContext) -> pb.GetLifetimeValueModelResponse:
        model_id = messages.MODEL_NAME.parse_one(request.name, required=True)
        async with self._db.unit_of_work(read_only=True) as uow:
            model = await self._lifetime_values.get(uow=uow, model_id=model_id)
        return pb.GetLifetimeValueModelResponse(lifetime_value_model=messages.model_to_proto(model))

    async def GetCustomerLifetimeValue(self, request: pb.GetCustomerLifetimeValueRequest,
                                       context: grpc.aio.ServicerContext) -> pb.GetCustomerLifetimeValueResponse:
        v = Violations()
        customer_id = None
        if CUSTOMER_NAME.check(request.customer, "customer", v, required=True):
            customer_id = CUSTOMER_NAME.id_in(request.customer)
        model_id = None
        if request.model and messages.MODEL_NAME.check(request.model, "model", v):
            model_id = messages.MODEL_NAME.id_in(request.model)
        horizon = rules.check_horizon(messages.horizon_days(request.horizon, request.HasField("horizon")), "horizon", v)
        rate = rules.check_discount_rate(
            messages.decimal_of(request.annual_discount_rate, "annual_discount_rate", v), "annual_discount_rate", v)
        purpose = purpose_from(request.audit, violations=v)
        v.raise_if_any()
        assert customer_id is not None
        async with self._db.unit_of_work(read_only=True) as uow:
            prediction = await self._lifetime_values.predict(
                uow=uow, customer_id=customer_id, model_id=model_id, horizon_days=horizon,
                annual_discount_rate=rate, purpose=purpose, actor=current_principal())
        return pb.GetCustomerLifetimeValueResponse(lifetime_value=messages.prediction_to_proto(prediction))
