"""GetNextBestAction: what to offer one customer now on the channel they are on, with why and why not."""

from __future__ import annotations

import grpc

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.api import nba_messages
from crm_campaign.nba.service import NextBestActions
from crmkit.auth import current_principal
from crmkit.resources import purpose_of


class NextBestActionRpcs:
    _next_best_actions: NextBestActions

    async def GetNextBestAction(self, request: pb.GetNextBestActionRequest, context: grpc.aio.ServicerContext
                                ) -> pb.GetNextBestActionResponse:
        decision = await self._next_best_actions.decide(
            customer=request.customer, channel=request.channel,
            max_actions=request.max_actions, purpose=purpose_of(request.audit), actor=current_principal())
        return nba_messages.decision_to_proto(decision)
