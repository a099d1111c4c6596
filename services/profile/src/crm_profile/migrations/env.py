"""Alembic environment of the profile database (async; shared body in crmkit.db)."""

from crmkit.db import run_migrations_online

import crm_profile.customers.tables  # noqa: F401 - registers the table on the metadata
from crm_profile.tables import metadata

run_migrations_online(metadata)
