"""The care_task table: work for a relationship manager or a branch team about one customer."""

from __future__ import annotations

import sqlalchemy as sa

from crm_campaign.tables import metadata

care_task = sa.Table(
    "care_task",
    metadata,
    sa.Column("care_task_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("kind", sa.SmallInteger, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("assignee", sa.Text, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    # care.model.CareTaskState: 1 open, 2 in progress, 3 done, 4 cancelled.
    sa.Column("state", sa.SmallInteger, nullable=False),
    sa.Column("outcome", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("outcome_note", sa.Text, nullable=False, server_default=""),
    sa.Column("contact_channel", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    # The offer to present; "" for both when the task carries none (no foreign key: the task
    # outlives a draft campaign deleted with its offers).
    sa.Column("offer_campaign_id", sa.Text, nullable=False, server_default=""),
    sa.Column("offer_id", sa.Text, nullable=False, server_default=""),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    # ListCareTasks pages earliest due first: an assignee's queue, a customer's tasks, or all.
    sa.Index("ix_care_task_assignee_due", "assignee", "due_at", "care_task_id"),
    sa.Index("ix_care_task_customer_due", "customer_id", "due_at", "care_task_id"),
    sa.Index("ix_care_task_due", "due_at", "care_task_id"),
)
