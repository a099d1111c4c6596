"""Long-running operations, and uploaded files for bulk import

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:30:00
"""

import sqlalchemy as sa
from alembic import op
from crmkit.kit_schema import create_operation_table, drop_operation_table

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_operation_table()
    op.create_table('import_upload',
    sa.Column('upload_id', sa.UUID(), nullable=False),
    sa.Column('creator', sa.Text(), nullable=False),
    sa.Column('file_name', sa.Text(), nullable=False),
    sa.Column('format', sa.SmallInteger(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.Text(), nullable=False),
    sa.Column('create_time', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expire_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('upload_id', name=op.f('pk_import_upload'))
    )
    op.create_index('ix_import_upload_expire_time', 'import_upload', ['expire_time'], unique=False)
    op.create_table('import_upload_chunk',
    sa.Column('upload_id', sa.UUID(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['import_upload.upload_id'], name=op.f('fk_import_upload_chunk_upload_id_import_upload'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id', 'seq', name=op.f('pk_import_upload_chunk'))
    )
    # Uploads live a day; compressing them costs more CPU than the disk it saves (and Parquet
    # is compressed already).
    op.execute('ALTER TABLE import_upload_chunk ALTER COLUMN data SET STORAGE EXTERNAL')


def downgrade() -> None:
    op.drop_table('import_upload_chunk')
    op.drop_index('ix_import_upload_expire_time', table_name='import_upload')
    op.drop_table('import_upload')
    drop_operation_table()
