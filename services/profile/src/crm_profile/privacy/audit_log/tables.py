"""The anchors the retention purge leaves where it cut the audit log's chains."""

from __future__ import annotations

import sqlalchemy as sa

from crm_profile.tables import metadata

# Where each audit chain stood when the retention purge removed its oldest records: the hash
# of the last removed record, from which the first kept one must follow.
audit_anchor = sa.Table(
    "audit_anchor",
    metadata,
    sa.Column("chain_id", sa.Text, primary_key=True),
    sa.Column("purged_through_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.LargeBinary, nullable=False),
    sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
