"""Trigger rule RPCs of CampaignService: proto -> arguments, one unit of work and one service call in
it, result -> proto. A mixin of the servicer, which supplies `_db` and `_triggers`."""

from __future__ import annotations

import grpc

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.api import trigger_messages
from crm_campaign.triggers.rules import TRIGGER_RULE_ID
from crm_campaign.triggers.service import TriggerRules
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.resources import ResourceName

# A name whose id the rules would refuse is bad input, not a missing resource.
TRIGGER_RULE = ResourceName("triggerRules/{trigger_rule_id}", id_pattern=TRIGGER_RULE_ID.pattern)


class TriggerRuleRpcs:
    _db: Database
    _triggers: TriggerRules

    async def CreateTriggerRule(self, request: pb.CreateTriggerRuleRequest, context: grpc.aio.ServicerContext
                                ) -> pb.CreateTriggerRuleResponse:
        async with self._db.unit_of_work() as uow:
            rule = await self._triggers.create(
                uow=uow, rule=trigger_messages.to_domain(request.trigger_rule),
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.CreateTriggerRuleResponse(trigger_rule=trigger_messages.to_proto(rule))

    async def GetTriggerRule(self, request: pb.GetTriggerRuleRequest, context: grpc.aio.ServicerContext
                             ) -> pb.GetTriggerRuleResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            rule = await self._triggers.get(uow=uow, trigger_rule_id=TRIGGER_RULE.parse_one(request.name))
        return pb.GetTriggerRuleResponse(trigger_rule=trigger_messages.to_proto(rule))

    async def ListTriggerRules(self, request: pb.ListTriggerRulesRequest, context: grpc.aio.ServicerContext
                               ) -> pb.ListTriggerRulesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._triggers.list(
                uow=uow, page_size=request.page_size, page_token=request.page_token, event_type=request.event_type,
                state=request.state, campaign=request.campaign)
        return pb.ListTriggerRulesResponse(trigger_rules=[trigger_messages.to_proto(r) for r in page.items],
                                           next_page_token=page.next_page_token)

    async def UpdateTriggerRule(self, request: pb.UpdateTriggerRuleRequest, context: grpc.aio.ServicerContext
                                ) -> pb.UpdateTriggerRuleResponse:
        trigger_rule_id = TRIGGER_RULE.parse_one(request.trigger_rule.name, "trigger_rule.name")
        async with self._db.unit_of_work() as uow:
            rule = await self._triggers.update(
                uow=uow, changes=trigger_messages.to_domain(request.trigger_rule, trigger_rule_id=trigger_rule_id),
                paths=list(request.update_mask.paths), etag=request.trigger_rule.etag, actor=current_principal())
        return pb.UpdateTriggerRuleResponse(trigger_rule=trigger_messages.to_proto(rule))

    async def DeleteTriggerRule(self, request: pb.DeleteTriggerRuleRequest, context: grpc.aio.ServicerContext
                                ) -> pb.DeleteTriggerRuleResponse:
        async with self._db.unit_of_work() as uow:
            await self._triggers.delete(uow=uow, trigger_rule_id=TRIGGER_RULE.parse_one(request.name),
                                        etag=request.etag, actor=current_principal())
        return pb.DeleteTriggerRuleResponse()
