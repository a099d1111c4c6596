"""The `operation` table, added to a service's metadata."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg


def operation_table(metadata: sa.MetaData) -> sa.Table:
    """The `operation` table, added to a service's metadata (DDL: kit_schema.create_operation_table)."""
    return sa.Table(
        "operation",
        metadata,
        sa.Column("operation_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("creator", sa.Text, nullable=False),
        sa.Column("progress_done", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("progress_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("progress_failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("progress_stage", sa.Text, nullable=False, server_default=""),
        # Serialised google.protobuf.Any / google.rpc.Status.
        sa.Column("metadata", sa.LargeBinary, nullable=False),
        sa.Column("response", sa.LargeBinary),
        sa.Column("error", sa.LargeBinary),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        # Bumped on every change a watcher should see (not on heartbeats).
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("heartbeat_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("end_time", sa.DateTime(timezone=True)),
        sa.Index("ix_operation_create_time", "create_time", "operation_id"),
        sa.Index("ix_operation_unfinished", "heartbeat_time", postgresql_where=sa.text("state IN (1, 2)")),
    )

