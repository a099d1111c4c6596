"""Consents per purpose x channel (an append-only ledger with evidence) and contact preferences."""
