"""The `crm` command line: run the whole platform on one machine, and call its services."""
