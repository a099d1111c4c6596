"""The contact-history import RPC of CampaignService: proto -> arguments, one unit of work, operation -> proto."""

from __future__ import annotations

import grpc

from crm.campaign.v1 import contact_import_pb2 as pb
from crm_campaign.api import contact_import_messages
from crm_campaign.contacts.service import ContactImports
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.validation import Violations


class ContactImportRpcs:
    _db: Database
    _contact_imports: ContactImports

    async def ImportContactHistory(self, request: pb.ImportContactHistoryRequest,
                                   context: grpc.aio.ServicerContext) -> pb.ImportContactHistoryResponse:
        violations = Violations()
        spec = contact_import_messages.spec_of(request, violations)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            started = await self._contact_imports.start(
                uow=uow, spec=spec, content=request.content, request_id=request_id, request=request,
                actor=current_principal(), violations=violations)
        started.launch()
        return pb.ImportContactHistoryResponse(operation=started.operation)
