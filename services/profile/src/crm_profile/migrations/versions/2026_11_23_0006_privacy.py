"""Privacy: erasure reports, retention policies (with their defaults), audit anchors, the rotated
key, and an index of the audit log by resource

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-23 19:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0001'
branch_labels = None
depends_on = None

# The default policies (privacy/retention/rules.py documents them). Frozen here: a migration is
# history, and later changes of the defaults are made by later migrations or by the bank.
_YEAR = 365
_POLICIES = [
    # data_class, days, anchor (1 record time, 2 relationship end), action (1 delete, 2 anonymise),
    # overrides_erasure, legal_basis
    (2, 5 * _YEAR, 2, 2, False, "Customer due diligence records: kept 5 years after the relationship ends (AML/CFT)"),
    (3, 5 * _YEAR, 2, 2, False, "Kept as long as the identity data they belong to"),
    (4, 5 * _YEAR, 2, 2, False, "Kept as long as the identity data they belong to"),
    (5, 10 * _YEAR, 2, 2, False, "Accounting records: 10 years after the relationship ends"),
    (6, 10 * _YEAR, 1, 1, True, "Transaction records: at least 5 years (AML/CFT), kept 10 for accounting"),
    (7, 3 * _YEAR, 1, 1, False, "Legitimate interest in service analytics: 3 years"),
    (8, 5 * _YEAR, 2, 1, False, "Proof of consent: the limitation period after the relationship ends"),
    (9, _YEAR, 2, 2, False, "Special-category data: kept no longer than the relationship needs, plus one year"),
    (10, 10 * _YEAR, 1, 1, False, "Access records: 10 years, for internal and regulatory audit"),
]


def upgrade() -> None:
    op.create_table('customer_erasure',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('erased_by', sa.Text(), nullable=False),
    sa.Column('case_reference', sa.Text(), nullable=False),
    sa.Column('report', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_erasure'))
    )
    policy = op.create_table('retention_policy',
    sa.Column('data_class', sa.SmallInteger(), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=False),
    sa.Column('anchor', sa.SmallInteger(), nullable=False),
    sa.Column('action', sa.SmallInteger(), nullable=False),
    sa.Column('overrides_erasure', sa.Boolean(), nullable=False),
    sa.Column('legal_basis', sa.Text(), server_default='', nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_purge_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('retention_days > 0', name=op.f('ck_retention_policy_retention_positive')),
    sa.PrimaryKeyConstraint('data_class', name=op.f('pk_retention_policy'))
    )
    op.bulk_insert(policy, [
        {'data_class': c, 'retention_days': days, 'anchor': anchor, 'action': action, 'overrides_erasure': overrides,
         'legal_basis': basis}
        for c, days, anchor, action, overrides, basis in _POLICIES
    ])
    op.create_table('audit_anchor',
    sa.Column('chain_id', sa.Text(), nullable=False),
    sa.Column('purged_through_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_hash', sa.LargeBinary(), nullable=False),
    sa.Column('purged_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('chain_id', name=op.f('pk_audit_anchor'))
    )
    op.create_table('encryption_key_state',
    sa.Column('purpose', sa.SmallInteger(), nullable=False),
    sa.Column('active_key_id', sa.Text(), nullable=False),
    sa.Column('replaced_key_id', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('purpose', name=op.f('pk_encryption_key_state'))
    )
    # "Who accessed this customer" (ListAuditRecords, the export, the erasure report): equality and
    # prefix (`customers/X/...`) lookups, whatever the database's collation.
    op.execute("CREATE INDEX ix_audit_record_resource_name ON audit_record (resource_name text_pattern_ops, seq)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_audit_record_resource_name")
    op.drop_table('encryption_key_state')
    op.drop_table('audit_anchor')
    op.drop_table('retention_policy')
    op.drop_table('customer_erasure')
