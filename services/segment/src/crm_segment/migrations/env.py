"""Alembic environment of the segment database (async; shared body in crmkit.db)."""

import crm_segment.classifications.tables
import crm_segment.clusters.tables
import crm_segment.clv.tables
import crm_segment.crosssell.tables
import crm_segment.features.tables
import crm_segment.membership.tables
import crm_segment.segments.tables  # noqa: F401 - registers the tables on the metadata
from crm_segment.tables import metadata
from crmkit.db import run_migrations_online

run_migrations_online(metadata)
