"""ListAuditRecords and VerifyAuditChain over the kit's hash-chained audit log (`crmkit.audit`);
`rules.py` says how the chains are checked, `tables.py` holds the anchors the retention purge
leaves where it cut a chain."""
