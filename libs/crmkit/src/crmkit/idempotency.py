"""Idempotent creates (AIP-155): a repeated `request_id` from the same caller replays the first answer.

The response is stored in the same transaction as the change, so a retry after a lost reply
finds either nothing (the first attempt rolled back; do it again) or the committed answer.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import Violations


def idempotency_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "idempotency_key",
        metadata,
        sa.Column("principal", sa.Text, primary_key=True),
        sa.Column("request_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("resource_name", sa.Text, nullable=False),
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


class IdempotencyKeys:
    def __init__(self, table: sa.Table) -> None:
        self._table = table

    async def claim(
        self, session: AsyncConnection, *, principal: str, request_id: uuid.UUID | None, method: str,
        resource_name: str,
    ) -> str | None:
        """Record the key; return the resource name of an earlier call with the same key, if any.

        A call without a key (`request_id` None, where the key is optional) claims nothing.
        The insert takes the key's row lock, so two concurrent retries serialise here and the
        second sees the first's committed answer.
        """
        if request_id is None:
            return None
        t = self._table
        inserted = await session.execute(
            pg.insert(t).values(principal=principal, request_id=request_id, method=method,
                                resource_name=resource_name).on_conflict_do_nothing().returning(t.c.request_id))
        if inserted.first() is not None:
            return None
        earlier = (await session.execute(
            sa.select(t.c.method, t.c.resource_name).where(t.c.principal == principal, t.c.request_id == request_id)
        )).one()
        if earlier.method != method:
            raise InvalidArgument([FieldViolation("request_id", "was already used for a different method")])
        return str(earlier.resource_name)
