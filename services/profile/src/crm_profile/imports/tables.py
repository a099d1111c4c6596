"""Uploaded import files, kept in the profile database until they expire.

A file is stored as numbered chunks of at most 1 MiB (`import_upload_chunk`), so neither the
upload nor an import ever holds a whole file in memory. Chunks are stored uncompressed
(`STORAGE EXTERNAL`, set by the migration): uploads live a day, and Parquet is compressed already.

The import's scratch tables (`import_work_<operation>`) are not here: each import makes its own
unlogged copy of the customer table's shape and drops it when the operation ends.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_profile.tables import metadata

import_upload = sa.Table(
    "import_upload",
    metadata,
    sa.Column("upload_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("creator", sa.Text, nullable=False),
    sa.Column("file_name", sa.Text, nullable=False),
    sa.Column("format", sa.SmallInteger, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_import_upload_expire_time", "expire_time"),
)

import_upload_chunk = sa.Table(
    "import_upload_chunk",
    metadata,
    sa.Column("upload_id", pg.UUID(as_uuid=True), sa.ForeignKey("import_upload.upload_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
