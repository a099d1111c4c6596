"""Shared test fixtures for every suite in the repository (real PostgreSQL, in-process servers)."""

import os

pytest_plugins = ["crmkit.testing"]

# The suite keeps dozens of services alive at once (in-process per suite, real processes for the
# CLI, gateway and cross-service tests), each with its own pools, against one PostgreSQL whose
# default limit is 100 connections. Three per pool is plenty for tests (two is not: a segment
# materialisation holds a raw connection while its progress takes another); a test that needs
# more sets it. Child processes inherit it through the environment.
os.environ.setdefault("CRM_DB_POOL_SIZE", "3")
