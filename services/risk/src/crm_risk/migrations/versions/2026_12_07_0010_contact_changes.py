"""Contact digests and changes, for contact-detail-changes alert rules

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contact_digest',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('field', sa.Text(), nullable=False),
    sa.Column('digest', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'field', name=op.f('pk_contact_digest'))
    )
    op.create_table('contact_change',
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('field', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', 'field', 'event_id', name=op.f('pk_contact_change'))
    )
    op.create_index('ix_contact_change_time', 'contact_change', ['customer_id', 'changed_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_contact_change_time', table_name='contact_change')
    op.drop_table('contact_change')
    op.drop_table('contact_digest')
