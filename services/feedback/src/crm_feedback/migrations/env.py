"""Alembic environment of the feedback database (async; shared body in crmkit.db)."""

# Imported for the side effect: each module registers its tables on the metadata.
import crm_feedback.complaints.tables
import crm_feedback.customers.tables
import crm_feedback.sla.tables
import crm_feedback.surveys.tables  # noqa: F401
from crm_feedback.tables import metadata
from crmkit.db import run_migrations_online

run_migrations_online(metadata)
