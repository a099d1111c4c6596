"""The customer feature read model: profile's change feed folded into one row per customer."""
