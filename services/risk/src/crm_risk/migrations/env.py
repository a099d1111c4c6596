"""Alembic environment of the risk database (async; shared body in crmkit.db)."""

import crm_risk.alerts.tables  # noqa: F401 - registers the tables on the metadata
from crm_risk.tables import metadata
from crmkit.db import run_migrations_online

run_migrations_online(metadata)
