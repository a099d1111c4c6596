"""The customer table. Personal data columns hold AES-GCM ciphertext (`*_sealed`) and, where
lookups need them, keyed blind indexes (`*_index`); nothing personal is stored in clear."""

from __future__ import annotations

import sqlalchemy as sa

from crm_profile.tables import metadata

customer = sa.Table(
    "customer",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("customer_type", sa.SmallInteger, nullable=False),
    sa.Column("full_name_sealed", sa.LargeBinary, nullable=False),
    sa.Column("birth_date", sa.Date),
    sa.Column("gender", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("nationality", sa.Text, nullable=False, server_default=""),
    sa.Column("id_type", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("id_number_sealed", sa.LargeBinary),
    sa.Column("id_number_index", sa.LargeBinary),
    sa.Column("id_issuing_country", sa.Text, nullable=False, server_default=""),
    sa.Column("id_expires_on", sa.Date),
    sa.Column("mobile_phone_sealed", sa.LargeBinary),
    sa.Column("mobile_phone_index", sa.LargeBinary),
    sa.Column("email_sealed", sa.LargeBinary),
    sa.Column("email_index", sa.LargeBinary),
    sa.Column("address_sealed", sa.LargeBinary),
    sa.Column("occupation", sa.Text, nullable=False, server_default=""),
    sa.Column("kyc_status", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("risk_tolerance", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("relationship_manager_id", sa.Text, nullable=False, server_default=""),
    sa.Column("branch_id", sa.Text, nullable=False, server_default=""),
    sa.Column("onboarded_on", sa.Date, nullable=False),
    sa.Column("closed_on", sa.Date),
    sa.Column("preferred_language", sa.Text, nullable=False, server_default=""),
    # The key that sealed this row's personal data: the re-encryption job finds old rows by it.
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_customer_id_number_index", "id_number_index"),
    sa.Index("ix_customer_mobile_phone_index", "mobile_phone_index"),
    sa.Index("ix_customer_email_index", "email_index"),
    sa.Index("ix_customer_relationship_manager_id", "relationship_manager_id", "customer_id"),
    sa.Index("ix_customer_branch_id", "branch_id", "customer_id"),
)
