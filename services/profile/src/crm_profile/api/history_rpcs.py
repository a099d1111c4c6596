"""Field history and stale-data RPCs: proto -> arguments, one unit of work and one service call in
it, result -> proto."""

from __future__ import annotations

from datetime import UTC

import grpc

from crm.profile.v1 import history_pb2
from crm_profile.history.service import FieldChangeView, FieldHistory, StaleField
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.resources import ResourceName, purpose_from
from crmkit.values import duration, set_timestamps, timestamp

CUSTOMER = ResourceName("customers/{customer_id}")
ALL_CUSTOMERS = "customers/-"



def _change_to_proto(view: FieldChangeView) -> history_pb2.FieldChange:
    c = view.change
    message = history_pb2.FieldChange(
        name=f"customers/{c.customer_id}/fieldChanges/{c.entry_id}", field=c.field,
        kind=history_pb2.FieldChangeKind.ValueType(c.kind), old_value=c.old, new_value=c.new, masked=view.masked,
        actor=c.actor, source=history_pb2.ChangeSource.ValueType(c.source), source_system=c.source_system,
        origin=c.origin)
    set_timestamps(message, change_time=c.changed_at)
    return message


def _stale_to_proto(stale: StaleField) -> history_pb2.StaleField:
    return history_pb2.StaleField(
        customer=f"customers/{stale.customer_id}", field=stale.field,
        last_confirm_time=timestamp(stale.last_confirm_time), max_age=duration(stale.max_age),
        overdue=duration(stale.overdue))


class HistoryRpcs:
    """Who changed which field when, which fields are stale, and confirming them."""

    _db: Database
    _history: FieldHistory

    async def ListFieldChanges(self, request: history_pb2.ListFieldChangesRequest,
                               context: grpc.aio.ServicerContext) -> history_pb2.ListFieldChangesResponse:
        interval = request.change_interval
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._history.list_changes(uow=uow,
                customer_id=CUSTOMER.parse_one(request.parent, "parent"), page_size=request.page_size,
                page_token=request.page_token, fields=list(request.fields),
                start=interval.start_time.ToDatetime(tzinfo=UTC) if interval.HasField("start_time") else None,
                end=interval.end_time.ToDatetime(tzinfo=UTC) if interval.HasField("end_time") else None,
                purpose=purpose_from(request.audit), actor=current_principal())
        return history_pb2.ListFieldChangesResponse(field_changes=[_change_to_proto(v) for v in page.items],
                                                    next_page_token=page.next_page_token)

    async def ListStaleFields(self, request: history_pb2.ListStaleFieldsRequest,
                              context: grpc.aio.ServicerContext) -> history_pb2.ListStaleFieldsResponse:
        customer_id = None if request.parent == ALL_CUSTOMERS else CUSTOMER.parse_one(request.parent, "parent")
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._history.list_stale(uow=uow,
                customer_id=customer_id, page_size=request.page_size, page_token=request.page_token,
                fields=list(request.fields), relationship_manager_id=request.relationship_manager_id,
                branch_id=request.branch_id, purpose=purpose_from(request.audit), actor=current_principal())
        return history_pb2.ListStaleFieldsResponse(stale_fields=[_stale_to_proto(s) for s in page.items],
                                                   next_page_token=page.next_page_token)

    async def ConfirmFields(self, request: history_pb2.ConfirmFieldsRequest,
                            context: grpc.aio.ServicerContext) -> history_pb2.ConfirmFieldsResponse:
        async with self._db.unit_of_work() as uow:
            confirmations = await self._history.confirm(uow=uow,
                customer_id=CUSTOMER.parse_one(request.name), fields=list(request.fields),
                purpose=purpose_from(request.audit), actor=current_principal())
        return history_pb2.ConfirmFieldsResponse(confirmations=[
            history_pb2.FieldConfirmation(field=c.field, confirm_time=timestamp(c.confirm_time))
            for c in confirmations])
