"""The contact-history RPC of CampaignService: proto -> arguments, one read-only unit of work, result -> proto."""

from __future__ import annotations

import grpc

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.api import history_messages
from crm_campaign.history.service import ContactHistory
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.resources import purpose_of
from crmkit.validation import Violations


class HistoryRpcs:
    _db: Database
    _history: ContactHistory

    async def ListContactHistory(self, request: pb.ListContactHistoryRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.ListContactHistoryResponse:
        violations = Violations()
        query = history_messages.filter_to_domain(request, violations)
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._history.list(uow=uow, query=query, purpose=purpose_of(request.audit),
                                            page_size=request.page_size, page_token=request.page_token,
                                            actor=current_principal(), violations=violations)
        return pb.ListContactHistoryResponse(entries=[history_messages.entry_to_proto(e) for e in page.items],
                                             next_page_token=page.next_page_token)
