"""Alembic environment of the profile database (async; shared body in crmkit.db)."""

import crm_profile.customers.tables  # noqa: F401 - registers the table on the metadata
from crm_profile.tables import metadata
from crmkit.db import run_migrations_online

run_migrations_online(metadata)
