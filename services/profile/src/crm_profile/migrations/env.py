"""Alembic environment of the profile database (async; shared body in crmkit.db)."""

import crm_profile.attributes.tables
import crm_profile.consents.tables
import crm_profile.customers.tables
import crm_profile.events.tables
import crm_profile.features.tables
import crm_profile.history.tables
import crm_profile.holdings.tables
import crm_profile.identity.tables
import crm_profile.imports.tables
import crm_profile.privacy.audit_log.tables
import crm_profile.privacy.data_subject.tables
import crm_profile.privacy.key_rotation.tables
import crm_profile.privacy.retention.tables
import crm_profile.relationships.tables  # noqa: F401
from crm_profile.tables import metadata
from crmkit.db import run_migrations_online

run_migrations_online(metadata)
