"""Propensity model RPCs of CampaignService: proto -> arguments, one unit of work, result -> proto."""

from __future__ import annotations

import grpc

from crm.campaign.v1 import propensity_pb2 as pb
from crm_campaign.api import propensity_messages
from crm_campaign.propensity import rules
from crm_campaign.propensity.service import PropensityModels
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.validation import Violations


class PropensityRpcs:
    _db: Database
    _propensity: PropensityModels

    async def TrainPropensityModel(self, request: pb.TrainPropensityModelRequest,
                                   context: grpc.aio.ServicerContext) -> pb.TrainPropensityModelResponse:
        violations = Violations()
        params = rules.params_of(request.offer_type, request.held_out_fraction, request.seed, violations)
        violations.raise_if_any()
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            started = await self._propensity.train(uow=uow, params=params, request_id=request_id, request=request,
                                                   actor=current_principal())
        started.launch()
        return pb.TrainPropensityModelResponse(operation=started.operation)

    async def GetPropensityModel(self, request: pb.GetPropensityModelRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.GetPropensityModelResponse:
        offer_type, version = propensity_messages.parse_name(request.name)
        async with self._db.unit_of_work(read_only=True) as uow:
            model = await self._propensity.get(uow=uow, offer_type=offer_type, version=version)
        return pb.GetPropensityModelResponse(propensity_model=propensity_messages.to_proto(model))
