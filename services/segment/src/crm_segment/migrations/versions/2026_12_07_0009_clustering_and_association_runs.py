"""Clustering runs with their clusters and customer assignments; association-rule runs with
their rules

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clustering_run',
    sa.Column('run_id', postgresql.UUID(as_uuid=True), nullable=False),
    sa.Column('operation_id', postgresql.UUID(as_uuid=True), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('features', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('population_segment_id', sa.Text(), server_default='', nullable=False),
    sa.Column('requested_cluster_count', sa.SmallInteger(), nullable=False),
    sa.Column('min_cluster_count', sa.SmallInteger(), nullable=False),
    sa.Column('max_cluster_count', sa.SmallInteger(), nullable=False),
    sa.Column('missing_values', sa.SmallInteger(), nullable=False),
    sa.Column('random_seed', sa.BigInteger(), nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cluster_count', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('customer_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('excluded_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('silhouette_score', sa.Float(), server_default='0', nullable=False),
    sa.Column('silhouette_scores', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('silhouette_sampled', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('run_version', sa.Text(), server_default='', nullable=False),
    sa.Column('feature_means', postgresql.ARRAY(sa.Float()), server_default='{}', nullable=False),
    sa.Column('feature_standard_deviations', postgresql.ARRAY(sa.Float()), server_default='{}', nullable=False),
    sa.Column('features_as_of', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_clustering_run'))
    )
    op.create_index('ix_clustering_run_completed', 'clustering_run', [sa.text('completed_at DESC'), 'run_id'],
                    postgresql_where=sa.text('completed_at IS NOT NULL'))
    op.create_table('cluster',
    sa.Column('run_id', postgresql.UUID(as_uuid=True), nullable=False),
    sa.Column('cluster_id', sa.SmallInteger(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('share', sa.Float(), nullable=False),
    sa.Column('centroid', postgresql.ARRAY(sa.Float()), nullable=False),
    sa.Column('distinguishing_features', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['clustering_run.run_id'], name=op.f('fk_cluster_run_id_clustering_run'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'cluster_id', name=op.f('pk_cluster'))
    )
    op.create_table('cluster_assignment',
    sa.Column('run_id', postgresql.UUID(as_uuid=True), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('cluster_id', sa.SmallInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['clustering_run.run_id'],
                            name=op.f('fk_cluster_assignment_run_id_clustering_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'customer_id', name=op.f('pk_cluster_assignment'))
    )
    op.create_table('association_run',
    sa.Column('run_id', postgresql.UUID(as_uuid=True), nullable=False),
    sa.Column('operation_id', postgresql.UUID(as_uuid=True), nullable=False),
    sa.Column('population_segment_id', sa.Text(), server_default='', nullable=False),
    sa.Column('min_support', sa.Float(), nullable=False),
    sa.Column('min_confidence', sa.Float(), nullable=False),
    sa.Column('min_lift', sa.Float(), nullable=False),
    sa.Column('max_rule_size', sa.SmallInteger(), nullable=False),
    sa.Column('max_rules', sa.Integer(), nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('customer_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rule_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('matching_rule_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('features_as_of', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_association_run'))
    )
    op.create_index('ix_association_run_completed', 'association_run', [sa.text('completed_at DESC'), 'run_id'],
                    postgresql_where=sa.text('completed_at IS NOT NULL'))
    op.create_table('association_rule',
    sa.Column('run_id', postgresql.UUID(as_uuid=True), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('antecedent', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.Column('consequent', sa.Text(), nullable=False),
    sa.Column('support', sa.Float(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('lift', sa.Float(), nullable=False),
    sa.Column('both_count', sa.BigInteger(), nullable=False),
    sa.Column('antecedent_count', sa.BigInteger(), nullable=False),
    sa.Column('consequent_count', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['association_run.run_id'],
                            name=op.f('fk_association_rule_run_id_association_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'rule_id', name=op.f('pk_association_rule'))
    )


def downgrade() -> None:
    op.drop_table('association_rule')
    op.drop_index('ix_association_run_completed', table_name='association_run')
    op.drop_table('association_run')
    op.drop_table('cluster_assignment')
    op.drop_table('cluster')
    op.drop_index('ix_clustering_run_completed', table_name='clustering_run')
    op.drop_table('clustering_run')
