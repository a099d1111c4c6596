"""Seal a customer's personal data into stored columns and open it again.

Each value's associated data binds it to its customer and field, so ciphertext moved between
rows or columns does not decrypt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from crm_profile.customers.model import Customer
from crmkit.crypto import BlindIndex, KeyRing

_SEALED_TEXT_FIELDS = ("full_name", "id_number", "mobile_phone", "email")
_INDEXED_FIELDS = ("id_number", "mobile_phone", "email")
# (field, its column): formatted once, not per customer sealed.
_SEALED_COLUMNS = tuple((field, f"{field}_sealed") for field in _SEALED_TEXT_FIELDS)
_INDEX_COLUMNS = tuple((field, f"{field}_index") for field in _INDEXED_FIELDS)
# `json.dumps(address, sort_keys=True)` without building an encoder per call: the same text.
_address_json = json.JSONEncoder(sort_keys=True).encode
# The stored columns of a customer's personal data, in the order `seal_values` gives them.
SEALED_COLUMNS = ("key_id", *(column for _, column in _SEALED_COLUMNS), *(column for _, column in _INDEX_COLUMNS),
                  "address_sealed")


class PersonalDataVault:
    def __init__(self, keys: KeyRing, index: BlindIndex) -> None:
        self._keys = keys
        self._index = index

    def seal(self, customer: Customer) -> dict[str, Any]:
        """The stored columns for the customer's personal data."""
        return dict(zip(SEALED_COLUMNS, self.seal_values(customer), strict=True))

    def seal_values(self, customer: Customer) -> tuple[Any, ...]:
        """`seal(customer)`'s values in SEALED_COLUMNS order, without the dict (bulk import
        stages rows as tuples)."""
        cid = customer.customer_id
        seal, index = self._keys.seal, self._index.of
        return (
            self._keys.active_key_id,
            *(seal(value, context=f"customer:{cid}:{field}") if (value := getattr(customer, field)) else None
              for field, _ in _SEALED_COLUMNS),
            *(index(value, kind=field) if (value := getattr(customer, field)) else None
              for field, _ in _INDEX_COLUMNS),
            seal(_address_json(customer.address), context=f"customer:{cid}:address") if customer.address else None,
        )

    def open(self, row: Mapping[Any, Any]) -> dict[str, Any]:
        """Clear values of the personal fields of a stored row."""
        cid = row["customer_id"]
        values: dict[str, Any] = {}
        for field in _SEALED_TEXT_FIELDS:
            sealed = row[f"{field}_sealed"]
            values[field] = self._keys.open(sealed, context=f"customer:{cid}:{field}") if sealed else ""
        sealed_address = row["address_sealed"]
        values["address"] = (
            json.loads(self._keys.open(sealed_address, context=f"customer:{cid}:address")) if sealed_address else {}
        )
        return values

    def index_of(self, value: str, *, kind: str) -> bytes:
        return self._index.of(value, kind=kind)

    def seal_field(self, customer_id: str, field: str, value: str) -> bytes:
        """One personal value outside the customer row (an attribute, a history entry), bound to
        its customer and field path."""
        return self._keys.seal(value, context=f"customer:{customer_id}:{field}")

    def open_field(self, customer_id: str, field: str, sealed: bytes) -> str:
        return self._keys.open(sealed, context=f"customer:{customer_id}:{field}")
