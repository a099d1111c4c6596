"""Retention: the policies per data class (`rules.py` lists the defaults and the legal floors), and
the purge that enforces them. `service.py` serves the RPCs in the caller's unit of work;
`purge.py` is the purge itself, an operation that opens its own unit of work per batch."""
