"""Seal a complaint's description into its stored column and open it again.

The associated data binds the ciphertext to its complaint and field, so a value copied into
another row does not decrypt.
"""

from __future__ import annotations

from typing import Any

from crmkit.crypto import KeyRing


class DescriptionVault:
    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys

    def seal(self, complaint_id: str, description: str) -> dict[str, Any]:
        """The stored columns for the description."""
        return {
            "description_sealed": self._keys.seal(description, context=f"complaint:{complaint_id}:description"),
            "key_id": self._keys.active_key_id,
        }

    def open(self, row: Any) -> str:
        return self._keys.open(row.description_sealed, context=f"complaint:{row.complaint_id}:description")

    def seal_text(self, complaint_id: str, field: str, text: str) -> bytes:
        """Other free text of a complaint (a note, the resolution summary), bound to its place."""
        return self._keys.seal(text, context=f"complaint:{complaint_id}:{field}")

    def open_text(self, complaint_id: str, field: str, sealed: bytes) -> str:
        return self._keys.open(sealed, context=f"complaint:{complaint_id}:{field}")

    @property
    def key_id(self) -> str:
        return self._keys.active_key_id
