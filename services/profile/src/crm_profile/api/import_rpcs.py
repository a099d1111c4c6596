"""Bulk import RPCs of ProfileService: proto -> arguments, one service call, result -> proto."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.profile.v1 import import_pb2
from crm_profile.api import import_messages
from crm_profile.imports.service import Imports
from crmkit.auth import current_principal


class ImportRpcs:
    """Upload a file, then import it as a long-running operation."""

    _imports: Imports

    async def UploadImportFile(self, request_iterator: AsyncIterator[import_pb2.UploadImportFileRequest],
                               context: grpc.aio.ServicerContext) -> import_pb2.UploadImportFileResponse:
        messages = aiter(request_iterator)
        header = import_messages.upload_header(await anext(messages, None))
        upload = await self._imports.upload(header=header, chunks=import_messages.upload_chunks(messages),
                                            actor=current_principal())
        return import_pb2.UploadImportFileResponse(upload=import_messages.upload_to_proto(upload))

    async def ImportCustomers(self, request: import_pb2.ImportCustomersRequest, context: grpc.aio.ServicerContext
                              ) -> import_pb2.ImportCustomersResponse:
        operation = await self._imports.start(spec=import_messages.spec_of(request), actor=current_principal())
        return import_pb2.ImportCustomersResponse(operation=operation)
