"""Alembic environment of the campaign database (async; shared body in crmkit.db)."""

import crm_campaign.audience.read_models
import crm_campaign.audience.tables
import crm_campaign.book.tables
import crm_campaign.campaigns.tables
import crm_campaign.care.tables
import crm_campaign.contacts.tables
import crm_campaign.dispatch.tables
import crm_campaign.engagement.tables
import crm_campaign.loyalty.tables
import crm_campaign.nba.tables
import crm_campaign.offers.tables
import crm_campaign.propensity.tables
import crm_campaign.renewals.tables
import crm_campaign.triggers.tables  # noqa: F401
from crm_campaign.tables import metadata
from crmkit.db import run_migrations_online

run_migrations_online(metadata)
