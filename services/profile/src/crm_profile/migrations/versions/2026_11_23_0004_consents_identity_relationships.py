"""Consent ledger, contact preferences, identity resolution (match rules, candidates, merges,
name keys, matcher cursor), relationships; customer state and merged_into

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23 18:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0001'
branch_labels = None
depends_on = None

_EVIDENCE_COLUMNS = ("record_id", "seq", "origin_customer_id", "purpose", "channel", "decision", "source",
                     "source_reference", "effective_at", "text_version", "recorded_by", "expire_at", "recorded_at",
                     "recorder", "batch_id", "merge_id")
_IMMUTABLE_EVIDENCE = (
    f"""CREATE FUNCTION consent_record_evidence_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF ({', '.join('NEW.' + c for c in _EVIDENCE_COLUMNS)})
           IS DISTINCT FROM ({', '.join('OLD.' + c for c in _EVIDENCE_COLUMNS)}) THEN
            RAISE EXCEPTION 'consent_record is a ledger: only customer_id may change (merge and unmerge)';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER consent_record_evidence_immutable BEFORE UPDATE ON consent_record
        FOR EACH ROW EXECUTE FUNCTION consent_record_evidence_immutable()""",
)


def upgrade() -> None:
    op.add_column('customer', sa.Column('state', sa.SmallInteger(), server_default='1', nullable=False))
    op.add_column('customer', sa.Column('merged_into', sa.Text(), server_default='', nullable=False))
    op.create_index('ix_customer_birth_date', 'customer', ['customer_type', 'birth_date'], unique=False)

    op.create_table('consent_record',
    sa.Column('record_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('origin_customer_id', sa.Text(), nullable=False),
    sa.Column('purpose', sa.SmallInteger(), nullable=False),
    sa.Column('channel', sa.SmallInteger(), nullable=False),
    sa.Column('decision', sa.SmallInteger(), nullable=False),
    sa.Column('source', sa.SmallInteger(), nullable=False),
    sa.Column('source_reference', sa.Text(), server_default='', nullable=False),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text_version', sa.Text(), server_default='', nullable=False),
    sa.Column('recorded_by', sa.Text(), nullable=False),
    sa.Column('expire_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('recorder', sa.Text(), nullable=False),
    sa.Column('batch_id', sa.UUID(), nullable=False),
    sa.Column('merge_id', sa.UUID(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'], name=op.f('fk_consent_record_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('record_id', name=op.f('pk_consent_record')),
    sa.UniqueConstraint('seq', name=op.f('uq_consent_record_seq'))
    )
    op.create_index('ix_consent_record_customer_pair', 'consent_record', ['customer_id', 'purpose', 'channel'], unique=False)
    op.create_index('ix_consent_record_customer_seq', 'consent_record', ['customer_id', 'seq'], unique=False)
    op.create_index('ix_consent_record_batch_id', 'consent_record', ['batch_id'], unique=False)
    for statement in _IMMUTABLE_EVIDENCE:
        op.execute(statement)

    op.create_table('contact_preference',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('preferred_channels', postgresql.ARRAY(sa.SmallInteger()), server_default='{}', nullable=False),
    sa.Column('contact_windows', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('time_zone', sa.Text(), server_default='', nullable=False),
    sa.Column('do_not_contact', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('do_not_contact_reason', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('do_not_contact_note', sa.Text(), server_default='', nullable=False),
    sa.Column('do_not_contact_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('do_not_contact_until', sa.Date(), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'], name=op.f('fk_contact_preference_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_contact_preference'))
    )

    op.create_table('match_rule',
    sa.Column('match_rule_id', sa.Text(), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.Column('disabled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('criteria', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('action', sa.SmallInteger(), nullable=False),
    sa.Column('survivorship_rules', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('match_rule_id', name=op.f('pk_match_rule'))
    )
    op.create_index('ix_match_rule_priority', 'match_rule', ['priority', 'match_rule_id'], unique=False)

    op.create_table('match_candidate',
    sa.Column('match_candidate_id', sa.UUID(), nullable=False),
    sa.Column('customer_a', sa.Text(), nullable=False),
    sa.Column('customer_b', sa.Text(), nullable=False),
    sa.Column('match_rule_id', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('similarities', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False),
    sa.Column('state', sa.SmallInteger(), nullable=False),
    sa.Column('review_conflict', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.Text(), server_default='', nullable=False),
    sa.Column('merge_name', sa.Text(), server_default='', nullable=False),
    sa.Column('dismiss_reason', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('match_candidate_id', name=op.f('pk_match_candidate'))
    )
    op.create_index('uq_match_candidate_pair', 'match_candidate', ['customer_a', 'customer_b'], unique=True,
                    postgresql_where=sa.text('state IN (1, 3)'))
    op.create_index('ix_match_candidate_queue', 'match_candidate',
                    ['state', sa.text('score DESC'), 'created_at', 'match_candidate_id'], unique=False)
    op.create_index('ix_match_candidate_customer_b', 'match_candidate', ['customer_b'], unique=False)

    op.create_table('customer_merge',
    sa.Column('merge_id', sa.UUID(), nullable=False),
    sa.Column('survivor_id', sa.Text(), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=False),
    sa.Column('state', sa.SmallInteger(), nullable=False),
    sa.Column('field_lineage', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('consent_conflicts', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('review_required', sa.Boolean(), nullable=False),
    sa.Column('review_reasons', postgresql.ARRAY(sa.SmallInteger()), nullable=False),
    sa.Column('match_candidate_id', sa.UUID(), nullable=True),
    sa.Column('match_rule_id', sa.Text(), server_default='', nullable=False),
    sa.Column('merged_by', sa.Text(), nullable=False),
    sa.Column('merged_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('unmerged_by', sa.Text(), server_default='', nullable=False),
    sa.Column('unmerged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('undo', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('merge_id', name=op.f('pk_customer_merge'))
    )
    op.create_index('ix_customer_merge_survivor', 'customer_merge', ['survivor_id', sa.text('merged_at DESC')], unique=False)
    op.create_index('ix_customer_merge_source', 'customer_merge', ['source_id', 'state'], unique=False)
    op.create_index('ix_customer_merge_merged_at', 'customer_merge', [sa.text('merged_at DESC'), 'merge_id'], unique=False)

    op.create_table('match_name_key',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('name_key', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_match_name_key'))
    )
    op.create_index('ix_match_name_key_name_key', 'match_name_key', ['name_key'], unique=False)

    op.create_table('matcher_state',
    sa.Column('singleton', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('cursor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('name_keys_ready', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('name_keys_after', sa.Text(), server_default='', nullable=False),
    sa.CheckConstraint('singleton', name=op.f('ck_matcher_state_singleton')),
    sa.PrimaryKeyConstraint('singleton', name=op.f('pk_matcher_state'))
    )
    op.execute("INSERT INTO matcher_state (singleton, cursor) VALUES (true, 0)")

    op.create_table('customer_relationship',
    sa.Column('relationship_id', sa.UUID(), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('related_customer_id', sa.Text(), nullable=False),
    sa.Column('type', sa.SmallInteger(), nullable=False),
    sa.Column('ownership_percent', sa.Numeric(7, 4), nullable=True),
    sa.Column('guaranteed_holding', sa.Text(), server_default='', nullable=False),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('source_system', sa.Text(), nullable=False),
    sa.Column('mirror_id', sa.UUID(), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.customer_id'], name=op.f('fk_customer_relationship_customer_id_customer'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['related_customer_id'], ['customer.customer_id'], name=op.f('fk_customer_relationship_related_customer_id_customer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('relationship_id', name=op.f('pk_customer_relationship')),
    sa.UniqueConstraint('customer_id', 'related_customer_id', 'type', name='uq_customer_relationship_link')
    )
    op.create_index('uq_customer_relationship_spouse', 'customer_relationship', ['customer_id'], unique=True,
                    postgresql_where=sa.text('type = 1'))
    op.create_index('ix_customer_relationship_related', 'customer_relationship', ['related_customer_id'], unique=False)
    op.create_index('ix_customer_relationship_order', 'customer_relationship', ['customer_id', 'type', 'related_customer_id'], unique=False)


def downgrade() -> None:
    op.drop_table('customer_relationship')
    op.drop_table('matcher_state')
    op.drop_table('match_name_key')
    op.drop_table('customer_merge')
    op.drop_table('match_candidate')
    op.drop_table('match_rule')
    op.drop_table('contact_preference')
    op.execute("DROP TRIGGER consent_record_evidence_immutable ON consent_record")
    op.execute("DROP FUNCTION consent_record_evidence_immutable()")
    op.drop_table('consent_record')
    op.drop_index('ix_customer_birth_date', table_name='customer')
    op.drop_column('customer', 'merged_into')
    op.drop_column('customer', 'state')
