"""Imported contact history: a bank's past campaign calls, loaded from files (see `service`)."""
