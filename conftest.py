"""Shared test fixtures for every suite in the repository (real PostgreSQL, in-process servers)."""

import os

pytest_plugins = ["crmkit.testing"]

# The suite keeps dozens of services alive at once (in-process per suite, real processes for the
# CLI, gateway and cross-service tests), each with its own pools, against one PostgreSQL whose
# default limit is 100 connections. Two per pool (plus as many overflow in SQLAlchemy's) is
# enough for tests, and with campaign's part-2 followers three ran out of connections late in the
# session; a test that needs more sets it. Child processes inherit it through the environment.
os.environ.setdefault("CRM_DB_POOL_SIZE", "2")
