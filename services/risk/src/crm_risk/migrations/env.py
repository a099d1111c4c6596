"""Alembic environment of the risk database (async; shared body in crmkit.db)."""

# Imported to register their tables on the metadata.
import crm_risk.alerting.tables
import crm_risk.alerts.tables
import crm_risk.customers.tables
import crm_risk.decisions.tables
import crm_risk.registry.tables
import crm_risk.reports.tables
import crm_risk.scoring.tables
import crm_risk.triggers.tables  # noqa: F401
from crm_risk.tables import metadata
from crmkit.db import run_migrations_online

run_migrations_online(metadata)
