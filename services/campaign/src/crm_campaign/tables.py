"""The campaign database's metadata: every table the migrations create, in one MetaData."""

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
# Long-running work (crmkit.operations): audience builds.
operation = operation_table(metadata)
# Cursors of the peer feeds campaign follows into its read models (crmkit.peer_feed).
feed_cursor = feed_cursor_table(metadata)
