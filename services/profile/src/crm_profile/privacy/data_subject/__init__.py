"""The data subject's rights: erasure (EraseCustomer) and access (ExportCustomerData).

`eraser.py` is the erasure path per data class, shared with the retention purge; `rules.py` maps
every data class to where it is held and what erasure does to it; `repository.py` is all the SQL
of erasure and export; `tables.py` the evidence each erasure leaves."""
