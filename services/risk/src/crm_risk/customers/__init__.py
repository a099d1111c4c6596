"""Risk's read model of customers: the facts its decisions need (risk tolerance and its expiry,
KYC status, date of birth, vulnerability, relationship manager and branch), as of the profile
change feed. Filled by the profile feed follower; read by suitability, alerts and scoring."""
