"""Care task RPCs of CampaignService: proto -> arguments, one unit of work, result -> proto."""

from __future__ import annotations

import grpc

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.api import care_messages
from crm_campaign.care.service import CareTasks
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id

CARE_TASK = care_messages.CARE_TASK


class CareRpcs:
    _db: Database
    _care_tasks: CareTasks

    async def CreateCareTask(self, request: pb.CreateCareTaskRequest, context: grpc.aio.ServicerContext
                             ) -> pb.CreateCareTaskResponse:
        request_id = parse_request_id(request.request_id)
        task = care_messages.to_domain(request.care_task)
        async with self._db.unit_of_work() as uow:
            created = await self._care_tasks.create(uow=uow, task=task, request_id=request_id, request=request,
                                                    actor=current_principal())
        return pb.CreateCareTaskResponse(care_task=care_messages.to_proto(created))

    async def GetCareTask(self, request: pb.GetCareTaskRequest, context: grpc.aio.ServicerContext
                          ) -> pb.GetCareTaskResponse:
        care_task_id = CARE_TASK.parse_one(request.name, required=True)
        async with self._db.unit_of_work(read_only=True) as uow:
            task = await self._care_tasks.get(uow=uow, care_task_id=care_task_id, actor=current_principal())
        return pb.GetCareTaskResponse(care_task=care_messages.to_proto(task))

    async def ListCareTasks(self, request: pb.ListCareTasksRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ListCareTasksResponse:
        query = care_messages.filter_to_domain(request)
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._care_tasks.list(uow=uow, query=query, page_size=request.page_size,
                                               page_token=request.page_token, actor=current_principal())
        return pb.ListCareTasksResponse(care_tasks=[care_messages.to_proto(t) for t in page.items],
                                        next_page_token=page.next_page_token)

    async def UpdateCareTask(self, request: pb.UpdateCareTaskRequest, context: grpc.aio.ServicerContext
                             ) -> pb.UpdateCareTaskResponse:
        care_task_id = CARE_TASK.parse_one(request.care_task.name, "care_task.name", required=True)
        changes = care_messages.to_domain(request.care_task, care_task_id=care_task_id)
        async with self._db.unit_of_work() as uow:
            task = await self._care_tasks.update(uow=uow, changes=changes, paths=list(request.update_mask.paths),
                                                 etag=request.care_task.etag, actor=current_principal())
        return pb.UpdateCareTaskResponse(care_task=care_messages.to_proto(task))

    async def DeleteCareTask(self, request: pb.DeleteCareTaskRequest, context: grpc.aio.ServicerContext
                             ) -> pb.DeleteCareTaskResponse:
        care_task_id = CARE_TASK.parse_one(request.name, required=True)
        async with self._db.unit_of_work() as uow:
            await self._care_tasks.delete(uow=uow, care_task_id=care_task_id, etag=request.etag,
                                          actor=current_principal())
        return pb.DeleteCareTaskResponse()

    async def CompleteCareTask(self, request: pb.CompleteCareTaskRequest, context: grpc.aio.ServicerContext
                               ) -> pb.CompleteCareTaskResponse:
        care_task_id = CARE_TASK.parse_one(request.name, required=True)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            task = await self._care_tasks.complete(
                uow=uow, care_task_id=care_task_id, completion=care_messages.completion_to_domain(request),
                etag=request.etag, request_id=request_id, request=request, actor=current_principal())
        return pb.CompleteCareTaskResponse(care_task=care_messages.to_proto(task))
