"""Alembic environment of the feedback database (async; shared body in crmkit.db)."""

import crm_feedback.complaints.tables  # noqa: F401 - registers the tables on the metadata
from crm_feedback.tables import metadata
from crmkit.db import run_migrations_online

run_migrations_online(metadata)
