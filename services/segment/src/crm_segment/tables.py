"""The segment database's metadata: every table the migrations create, in one MetaData."""

from __future__ import annotations

from crmkit.audit import audit_table
from crmkit.db import metadata as new_metadata
from crmkit.feed_consumer import feed_cursor_table
from crmkit.idempotency import idempotency_table
from crmkit.operations import operation_table
from crmkit.outbox import outbox_tables

metadata = new_metadata()
outbox_event, outbox_state = outbox_tables(metadata)
idempotency_key = idempotency_table(metadata)
audit_record = audit_table(metadata)
# Where each followed peer feed was applied up to (crmkit.feed_consumer).
feed_cursor = feed_cursor_table(metadata)
# Long-running work (crmkit.operations): materialisations.
operation = operation_table(metadata)
