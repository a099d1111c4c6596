"""Shared test fixtures for every suite in the repository (real PostgreSQL, in-process servers)."""

pytest_plugins = ["crmkit.testing"]
