"""Bulk import of customers from uploaded CSV or Parquet files, as long-running operations."""
