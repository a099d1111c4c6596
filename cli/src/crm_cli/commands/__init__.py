"""One module per `crm` sub-command; each only parses options and calls the modules above it."""
