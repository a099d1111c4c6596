"""Privacy: the data subject's rights (erasure, export), key rotation, the audit log, retention.

- `service.py`: EraseCustomer and ExportCustomerData. Erasure works per data class
  (`rules.erasure_plan`), so the retention purge erases closed customers through the same path.
- `rotation.py` + `rotation_worker.py`: re-encryption of every sealed value to a new key, as an
  operation run in a worker process (AES is CPU work).
- `audit_log.py`: ListAuditRecords and VerifyAuditChain over the kit's hash-chained audit log.
- `retention.py`: the retention policies and the purge (an operation, also run daily).
"""
