"""Churn scoring: one customer now with the drivers of their score, and the current scores written
back (what the gateway's customer 360 and the early-warning list read)."""
