"""All SQL of imported contact history (asyncpg COPY for the bulk write)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import asyncpg

from crm_campaign.contacts.model import ImportedContact

_COLUMNS = ("source_system", "contact_key", "customer_id", "offer_type", "channel", "contacted_at", "contact_month",
            "contact_day_of_week", "attempt_number", "outcome", "previous_outcome", "days_since_previous_contact",
            "previous_contact_count", "context", "line", "operation_id")


class ContactRepository:
    async def insert_new(self, connection: asyncpg.Connection, *, contacts: Sequence[ImportedContact],
                         source_system: str, operation_id: uuid.UUID) -> int:
        """Stage the contacts with COPY, then keep those not yet recorded from this source; returns
        how many were new."""
        await connection.execute(
            "CREATE TEMPORARY TABLE contact_stage (LIKE imported_contact INCLUDING DEFAULTS) ON COMMIT DROP")
        await connection.execute("ALTER TABLE contact_stage DROP COLUMN imported_contact_id")
        await connection.copy_records_to_table("contact_stage", columns=_COLUMNS, records=[
            (source_system, c.contact_key, c.customer_id, c.offer_type, c.channel, c.contacted_at, c.contact_month,
             c.contact_day_of_week, c.attempt_number, c.outcome, c.previous_outcome, c.days_since_previous_contact,
             c.previous_contact_count, json.dumps(c.context), c.line, operation_id) for c in contacts])
        names = ", ".join(_COLUMNS)
        status = await connection.execute(
            f"INSERT INTO imported_contact ({names}) SELECT {names} FROM contact_stage ORDER BY line "  # noqa: S608
            "ON CONFLICT ON CONSTRAINT uq_imported_contact_source_contact DO NOTHING")
        return int(status.rsplit(" ", 1)[1])
