"""Idempotent calls (AIP-155): a repeated `request_id` from the same caller replays the first answer.

The answer (the name of the resource acted on) is stored in the same transaction as the change,
so a retry after a lost reply finds either nothing (the first attempt rolled back; do it again)
or the committed answer. With it goes a fingerprint of the request (SHA-256 of its deterministic
serialisation with `request_id` cleared): a `request_id` reused with a different body is refused
with INVALID_ARGUMENT (`REQUEST_ID_REUSED`) instead of silently answering the other request.

Keys stored before fingerprints existed have none (NULL) and replay as they did: their first
body is unknown, and refusing them would fail an honest retry that spans the upgrade. They stop
mattering once the callers' retry windows (minutes) have passed.

In a service::

    replayed = await self._idempotency.claim_or_replay(
        uow, principal=actor.subject, request_id=request_id, request=request, method="CreateCampaign",
        resource_name=campaign.name, replay=lambda name: self.get(uow=uow, campaign_id=...))
    if replayed is not None:
        return replayed
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.dialects import postgresql as pg

from crmkit.db import UnitOfWork
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import Violations

T = TypeVar("T")


def idempotency_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "idempotency_key",
        metadata,
        sa.Column("principal", sa.Text, primary_key=True),
        sa.Column("request_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("resource_name", sa.Text, nullable=False),
        sa.Column("request_fingerprint", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def parse_request_id(request_id: str, field: str = "request_id", *,
                     violations: Violations | None = None) -> uuid.UUID | None:
    """A request's optional idempotency key; one that is not a UUID is INVALID_ARGUMENT at once, or with
    `violations` recorded there (for requests that report all fields together)."""
    if not request_id:
        return None
    try:
        return uuid.UUID(request_id)
    except ValueError as exc:
        if violations is None:
            raise InvalidArgument([FieldViolation(field, "must be a UUID")]) from exc
        violations.add(field, "must be a UUID")
        return None


def request_fingerprint(request: Message, field: str = "request_id") -> bytes:
    """SHA-256 of the request's deterministic serialisation with its idempotency key cleared."""
    unkeyed = request
    if field in request.DESCRIPTOR.fields_by_name:
        unkeyed = type(request)()
        unkeyed.CopyFrom(request)
        unkeyed.ClearField(field)
    return hashlib.sha256(unkeyed.SerializeToString(deterministic=True)).digest()


class IdempotencyKeys:
    def __init__(self, table: sa.Table) -> None:
        self._table = table
        # Built once, the values passed as parameters: `.values()` per call costs a coercion and a
        # cache-key walk per value.
        self._claim = pg.insert(table).on_conflict_do_nothing().returning(table.c.request_id)

    async def claim(
        self, uow: UnitOfWork, *, principal: str, request_id: uuid.UUID | None, request: Message, method: str,
        resource_name: str, field: str = "request_id",
    ) -> str | None:
        """Record the key with the request's fingerprint; return the resource name of an earlier
        call with the same key and the same body, if any.

        A call without a key (`request_id` None, where the key is optional) claims nothing.
        The insert takes the key's row lock, so two concurrent retries serialise here and the
        second sees the first's committed answer. The same key with another method or another
        body is INVALID_ARGUMENT on `field` (the key's path in the request, `request_id` unless
        the key sits in a sub-message, such as an upload stream's `header.request_id`).
        """
        if request_id is None:
            return None
        t = self._table
        fingerprint = request_fingerprint(request)
        inserted = await uow.execute(self._claim, {
            "principal": principal, "request_id": request_id, "method": method, "resource_name": resource_name,
            "request_fingerprint": fingerprint})
        if inserted.first() is not None:
            return None
        earlier = (await uow.execute(
            sa.select(t.c.method, t.c.resource_name, t.c.request_fingerprint)
            .where(t.c.principal == principal, t.c.request_id == request_id)
        )).one()
        if earlier.method != method:
            raise InvalidArgument([FieldViolation(field, "was already used for a different method")],
                                  reason="REQUEST_ID_REUSED")
        if earlier.request_fingerprint is not None and earlier.request_fingerprint != fingerprint:
            raise InvalidArgument([FieldViolation(
                field, "was already used for a request with a different body; use a new request_id")],
                reason="REQUEST_ID_REUSED")
        return str(earlier.resource_name)

    async def claim_or_replay(
        self, uow: UnitOfWork, *, principal: str, request_id: uuid.UUID | None, request: Message, method: str,
        resource_name: str, replay: Callable[[str], Awaitable[T]], field: str = "request_id",
    ) -> T | None:
        """`claim`, then for a repeated call the first answer, loaded by `replay(resource_name)`
        (which raises NOT_FOUND if the resource is gone); None when the caller should go ahead."""
        earlier = await self.claim(uow, principal=principal, request_id=request_id, request=request,
                                   method=method, resource_name=resource_name, field=field)
        return None if earlier is None else await replay(earlier)
