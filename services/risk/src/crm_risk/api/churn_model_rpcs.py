"""Churn model registry RPCs of RiskService: proto -> arguments, one unit of work and one service
call in it, result -> proto. TrainChurnModel launches its run once its unit of work has committed
(`crmkit.operations.Started`)."""

from __future__ import annotations

import grpc

from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.api import churn_model_messages as messages
from crm_risk.registry.service import ChurnRegistry
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id


class ChurnModelRpcs:
    """Train, read, list, promote (or roll back to) and retire churn models."""

    _db: Database
    _registry: ChurnRegistry

    async def TrainChurnModel(self, request: pb.TrainChurnModelRequest, context: grpc.aio.ServicerContext
                              ) -> pb.TrainChurnModelResponse:
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            started = await self._registry.start_training(
                uow=uow, request=messages.to_request(request.spec), request_id=request_id, message=request,
                actor=current_principal())
        started.launch()
        return pb.TrainChurnModelResponse(operation=started.operation)

    async def GetChurnModel(self, request: pb.GetChurnModelRequest, context: grpc.aio.ServicerContext
                            ) -> pb.GetChurnModelResponse:
        churn_model_id = messages.CHURN_MODEL_NAME.parse_one(request.name, required=True)
        async with self._db.unit_of_work(read_only=True) as uow:
            model = await self._registry.get(uow=uow, churn_model_id=churn_model_id)
        return pb.GetChurnModelResponse(churn_model=messages.to_proto(model))

    async def ListChurnModels(self, request: pb.ListChurnModelsRequest, context: grpc.aio.ServicerContext
                              ) -> pb.ListChurnModelsResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._registry.list(uow=uow, page_size=request.page_size, page_token=request.page_token,
                                             status=request.status, algorithm=request.algorithm)
        return pb.ListChurnModelsResponse(churn_models=[messages.to_proto(m) for m in page.items],
                                          next_page_token=page.next_page_token)

    async def PromoteChurnModel(self, request: pb.PromoteChurnModelRequest, context: grpc.aio.ServicerContext
                                ) -> pb.PromoteChurnModelResponse:
        churn_model_id = messages.CHURN_MODEL_NAME.parse_one(request.name, required=True)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            model, previous = await self._registry.promote(
                uow=uow, churn_model_id=churn_model_id, reason=request.reason, etag=request.etag,
                request_id=request_id, message=request, actor=current_principal())
        return pb.PromoteChurnModelResponse(churn_model=messages.to_proto(model), previous_model=previous)

    async def RetireChurnModel(self, request: pb.RetireChurnModelRequest, context: grpc.aio.ServicerContext
                               ) -> pb.RetireChurnModelResponse:
        churn_model_id = messages.CHURN_MODEL_NAME.parse_one(request.name, required=True)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            model = await self._registry.retire(
                uow=uow, churn_model_id=churn_model_id, reason=request.reason, etag=request.etag,
                request_id=request_id, message=request, actor=current_principal())
        return pb.RetireChurnModelResponse(churn_model=messages.to_proto(model))
