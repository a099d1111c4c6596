"""The key the last rotation made active."""

from __future__ import annotations

import sqlalchemy as sa

from crm_profile.tables import metadata

# The key a rotation made active, so a restart keeps sealing with it (see service.py).
encryption_key_state = sa.Table(
    "encryption_key_state",
    metadata,
    sa.Column("purpose", sa.SmallInteger, primary_key=True),
    sa.Column("active_key_id", sa.Text, nullable=False),
    # The configured key the rotation replaced: the state applies only while the configuration
    # still names that key (an operator who configures another key has the last word).
    sa.Column("replaced_key_id", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
