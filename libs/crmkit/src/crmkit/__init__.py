"""The shared kit: what every CRM service does the same way, so each service reads as its own domain."""
