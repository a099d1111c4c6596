"""Real-time membership: each customer change applied from profile's feed re-evaluates that
customer against the real-time segments and records and publishes who entered and who left."""
