"""Bulk import RPCs of ProfileService: proto -> arguments, one unit of work and one service call
in it, result -> proto. ImportCustomers launches the import once its unit of work has committed
(`crmkit.operations.Started`); the import's own steps then run in worker processes with their
own transactions (the documented `Database.raw()` exception for COPY-based bulk work)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from crm.profile.v1 import import_pb2
from crm_profile.api import import_messages
from crm_profile.imports.service import Imports
from crmkit.auth import current_principal
from crmkit.db import Database


class ImportRpcs:
    """Upload a file, then import it as a long-running operation."""

    _db: Database
    _imports: Imports

    async def UploadImportFile(self, request_iterator: AsyncIterator[import_pb2.UploadImportFileRequest],
                               context: grpc.aio.ServicerContext) -> import_pb2.UploadImportFileResponse:
        messages = aiter(request_iterator)
        first = await anext(messages, None)
        header = import_messages.upload_header(first)
        assert first is not None  # upload_header refuses a stream without its header
        async with self._db.unit_of_work() as uow:
            # A client stream has no one request: the header identifies the upload for its key.
            upload = await self._imports.upload(uow=uow, header=header, chunks=import_messages.upload_chunks(messages),
                                                request=first.header, actor=current_principal())
        return import_pb2.UploadImportFileResponse(upload=import_messages.upload_to_proto(upload))

    async def ImportCustomers(self, request: import_pb2.ImportCustomersRequest, context: grpc.aio.ServicerContext
                              ) -> import_pb2.ImportCustomersResponse:
        spec = import_messages.spec_of(request)
        async with self._db.unit_of_work() as uow:
            started = await self._imports.start(uow=uow, spec=spec, request=request, actor=current_principal())
        started.launch()
        return import_pb2.ImportCustomersResponse(operation=started.operation)
