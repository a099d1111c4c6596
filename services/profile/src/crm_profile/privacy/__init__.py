"""Privacy: the data subject's rights, retention, key rotation and the audit log, one sub-package each.

- `data_subject/`: EraseCustomer and ExportCustomerData. Erasure works per data class
  (`data_subject.rules.erasure_plan`) through `data_subject.eraser`, the one path that knows every
  column a customer's personal data sits in; the retention purge erases closed customers through it.
- `retention/`: the retention policies (ListRetentionPolicies, UpdateRetentionPolicy) and the purge,
  an operation (RunRetentionPurge, and once a day by itself; `retention/purge.py`).
- `key_rotation/`: RotateEncryptionKey, and the re-encryption of every sealed value to the new key,
  an operation run in a worker process (`key_rotation/worker.py`; AES is CPU work).
- `audit_log/`: ListAuditRecords and VerifyAuditChain over the kit's hash-chained audit log.

Each follows the house layout: `model.py` values, `rules.py` pure decisions, `repository.py` SQL,
`service.py` the RPCs' use cases in the caller's unit of work (crmkit.db's rule), `tables.py`.
They stay under one package rather than four top-level sub-domains because they share one
vocabulary (data classes and what each holds) and lean on each other: the purge erases through
`data_subject`, erasure reads the retention policies, export reads the audit log. The encryption
of personal values at rest is not here: it is `customers/vault.py`.
"""
