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
    # The system that created the customer (`crm` for API calls, the import's source system):
    # the data-quality report breaks figures down by it. Added by revision 0005.
    sa.Column("source_system", sa.Text, nullable=False, server_default="crm"),
    # The key that sealed this row's personal data: the re-encryption job finds old rows by it.
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # CustomerState and the survivor of a merge (migration 0004, identity resolution).
    sa.Column("state", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("merged_into", sa.Text, nullable=False, server_default=""),
    # Blind indexes are looked up by equality only: hash indexes (migration 0011 says why).
    sa.Index("ix_customer_id_number_index_hash", "id_number_index", postgresql_using="hash"),
    sa.Index("ix_customer_mobile_phone_index_hash", "mobile_phone_index", postgresql_using="hash"),
    sa.Index("ix_customer_email_index_hash", "email_index", postgresql_using="hash"),
    sa.Index("ix_customer_relationship_manager_id", "relationship_manager_id", "customer_id"),
    sa.Index("ix_customer_branch_id", "branch_id", "customer_id"),
    # Blocking of fuzzy match rules (identity resolution).
    sa.Index("ix_customer_birth_date", "customer_type", "birth_date"),
    # The stale-data list walks customers in creation order (migration 0010).
    sa.Index("ix_customer_created_at", "created_at", "customer_id"),
)


# Identifiers of customers in the bank's other systems, stored in clear (they are not personal
# values). The primary key makes each (system, id) pair belong to one customer at most.
customer_external_id = sa.Table(
    "customer_external_id",
    metadata,
    sa.Column("source_system", sa.Text, primary_key=True),
    sa.Column("external_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customer.customer_id", ondelete="CASCADE"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_customer_external_id_customer_id", "customer_id"),
)
