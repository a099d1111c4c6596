"""The kit's own tables (outbox, idempotency keys, audit log, operations) in a service's migrations.

Every service's database has them with the same shape; the service's first Alembic revision
calls `create_kit_tables()` instead of repeating their DDL, and a service that runs long work
adds `create_operation_table()` in the revision that introduces it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

_APPEND_ONLY = (
    """CREATE FUNCTION audit_record_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_record is append-only';
    END $$""",
    """CREATE TRIGGER audit_record_append_only BEFORE UPDATE OR DELETE ON audit_record
        FOR EACH ROW EXECUTE FUNCTION audit_record_append_only()""",
)


def create_kit_tables() -> None:
    op.create_table(
        "audit_record",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("chain_id", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource_name", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("trace_id", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_record")),
    )
    # Even the service's own login cannot rewrite history; a verifier would notice anyway.
    for statement in _APPEND_ONLY:
        op.execute(statement)
    op.create_table(
        "idempotency_key",
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("request_id", sa.UUID(), nullable=False),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("resource_name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("principal", "request_id", name=op.f("pk_idempotency_key")),
    )
    op.create_table(
        "outbox_event",
        sa.Column("cursor", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_name", sa.Text(), nullable=False),
        sa.Column("change_type", sa.SmallInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("trace_id", sa.Text(), server_default="", nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("cursor", name=op.f("pk_outbox_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_event_id")),
    )
    op.create_table(
        "outbox_state",
        sa.Column("singleton", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("purged_through", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("singleton", name=op.f("ck_outbox_state_singleton")),
        sa.PrimaryKeyConstraint("singleton", name=op.f("pk_outbox_state")),
    )


def drop_kit_tables() -> None:
    op.drop_table("outbox_state")
    op.drop_table("outbox_event")
    op.drop_table("idempotency_key")
    op.execute("DROP TRIGGER audit_record_append_only ON audit_record")
    op.execute("DROP FUNCTION audit_record_append_only()")
    op.drop_table("audit_record")


def add_outbox_xid() -> None:
    """Stamp each outbox row with its transaction's id (crmkit.outbox: the feed's order without a
    lock). Existing rows get xid 0: they were committed in sequence order under the old lock, so
    they come first, in that order, and old numeric cursors keep their meaning. Adding the column
    with a constant default rewrites nothing; the real default is set after it."""
    op.execute("ALTER TABLE outbox_event ADD COLUMN xid xid8 NOT NULL DEFAULT '0'")
    op.execute("ALTER TABLE outbox_event ALTER COLUMN xid SET DEFAULT pg_current_xact_id()")
    op.create_index("ix_outbox_event_xid_cursor", "outbox_event", ["xid", "cursor"])
    op.execute("ALTER TABLE outbox_state ADD COLUMN purged_xid xid8 NOT NULL DEFAULT '0'")


def drop_outbox_xid() -> None:
    op.execute("ALTER TABLE outbox_state DROP COLUMN purged_xid")
    op.drop_index("ix_outbox_event_xid_cursor", table_name="outbox_event")
    op.execute("ALTER TABLE outbox_event DROP COLUMN xid")


def create_operation_table() -> None:
    """The `operation` table of long-running work (crmkit.operations), for a service that runs any."""
    op.create_table(
        "operation",
        sa.Column("operation_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("creator", sa.Text(), nullable=False),
        sa.Column("progress_done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("progress_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("progress_failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("progress_stage", sa.Text(), server_default="", nullable=False),
        sa.Column("metadata", sa.LargeBinary(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.LargeBinary(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("operation_id", name=op.f("pk_operation")),
    )
    op.create_index("ix_operation_create_time", "operation", ["create_time", "operation_id"])
    op.create_index("ix_operation_unfinished", "operation", ["heartbeat_time"],
                    postgresql_where=sa.text("state IN (1, 2)"))


def drop_operation_table() -> None:
    op.drop_index("ix_operation_unfinished", table_name="operation")
    op.drop_index("ix_operation_create_time", table_name="operation")
    op.drop_table("operation")


def add_audit_call_columns() -> None:
    """The caller's roles and the RPC on each audit record (`crmkit.audit.AuditEntry`). Existing
    records get empty values, which their hashes never covered, so their chains still verify.
    Adding a column with a constant default rewrites nothing and fires no trigger, so the
    append-only trigger stays as it is."""
    op.execute("ALTER TABLE audit_record ADD COLUMN actor_roles text[] NOT NULL DEFAULT '{}',"
               " ADD COLUMN method text NOT NULL DEFAULT ''")


def drop_audit_call_columns() -> None:
    op.execute("ALTER TABLE audit_record DROP COLUMN actor_roles, DROP COLUMN method")


def add_idempotency_fingerprint() -> None:
    """The fingerprint of the request each idempotency key first answered (crmkit.idempotency).
    Keys stored before it have none (NULL) and replay as they did; a nullable column without a
    default rewrites nothing."""
    op.add_column("idempotency_key", sa.Column("request_fingerprint", sa.LargeBinary(), nullable=True))


def drop_idempotency_fingerprint() -> None:
    op.drop_column("idempotency_key", "request_fingerprint")


def add_audit_outcome_columns() -> None:
    """The field paths, the outcome and the hash recipe of each audit record (`crmkit.audit`).
    Existing records read as recipe 1, allowed, with no fields: what they were, and what their
    hashes are checked against. The column default stays 1, so a replica still running the
    previous release during a rollout writes recipe-1 records that verify as such.
    Constant defaults rewrite nothing and fire no trigger, so the append-only trigger stays."""
    op.execute("ALTER TABLE audit_record ADD COLUMN fields text[] NOT NULL DEFAULT '{}',"
               " ADD COLUMN outcome text NOT NULL DEFAULT 'ALLOWED',"
               " ADD COLUMN hash_recipe smallint NOT NULL DEFAULT 1")


def drop_audit_outcome_columns() -> None:
    op.execute("ALTER TABLE audit_record DROP COLUMN fields, DROP COLUMN outcome, DROP COLUMN hash_recipe")


def create_feed_cursor_table() -> None:
    """The cursors of the peer feeds a service follows (`crmkit.feed_consumer.feed_cursor_table`)."""
    op.create_table(
        "feed_cursor",
        sa.Column("feed", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("feed", name=op.f("pk_feed_cursor")),
    )


def drop_feed_cursor_table() -> None:
    op.drop_table("feed_cursor")
