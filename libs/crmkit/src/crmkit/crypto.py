"""Field-level encryption of personal data (AES-256-GCM with key ids) and blind indexes.

Each value is sealed as `v1 | key id | nonce | ciphertext+tag`, with the field's context (for
example `customer:C1:full_name`) as associated data, so a ciphertext copied into another row or
field fails to open. The key id travels with the value: keys rotate by adding a new active key
and re-encrypting in the background; old keys stay in the ring until no value uses them.

Blind indexes are keyed HMAC-SHA256 over a normalised value: equal inputs give equal indexes,
so lookups by ID number or phone need no decryption, and the index reveals nothing without
the key. The index key is separate from the encryption keys and does not rotate with them.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE_BYTES = 12
_TAG_BYTES = 16  # AES-GCM authentication tag


class DecryptionError(Exception):
    """A sealed value could not be opened: unknown key id, tampering, or wrong context."""


class KeyRing:
    def __init__(self, keys: Mapping[str, bytes], *, active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError(f"active key id {active_key_id!r} is not in the key ring")
        for key_id, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"key {key_id!r} must be 32 bytes (AES-256)")
            if not 0 < len(key_id.encode()) < 256:
                raise ValueError("key ids must be 1 to 255 bytes")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        # Each key's `v1 | key id` prefix, built once: a bulk import seals five values per row.
        self._headers = {key_id: _VERSION + bytes([len(key_id.encode())]) + key_id.encode() for key_id in keys}
        self.activate(active_key_id)

    @property
    def key_ids(self) -> frozenset[str]:
        """Every key id in the ring: values sealed with any of them open."""
        return frozenset(self._ciphers)

    def activate(self, key_id: str) -> None:
        """Seal new values with `key_id` from now on (a rotation); it must be in the ring already."""
        if key_id not in self._ciphers:
            raise ValueError(f"key id {key_id!r} is not in the key ring")
        self.active_key_id = key_id
        self._active = (self._headers[key_id], self._ciphers[key_id])

    @classmethod
    def parse(cls, spec: str, *, active_key_id: str) -> KeyRing:
        """Keys from `id1:base64key,id2:base64key` (the environment's format)."""
        keys: dict[str, bytes] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key_id, _, encoded = item.partition(":")
            keys[key_id] = base64.b64decode(encoded)
        return cls(keys, active_key_id=active_key_id)

    def seal(self, plaintext: str, *, context: str) -> bytes:
        header, cipher = self._active
        nonce = os.urandom(_NONCE_BYTES)
        return header + nonce + cipher.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, *, context: str) -> str:
        key_id, body = _split(sealed)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(f"unknown key id {key_id!r}")
        try:
            plaintext = cipher.decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], context.encode())
            return plaintext.decode()
        except Exception as exc:  # InvalidTag: tampered, or sealed for another context
            raise DecryptionError("value failed authentication") from exc

    @staticmethod
    def key_id_of(sealed: bytes) -> str:
        return _split(sealed)[0]


def _split(sealed: bytes) -> tuple[str, bytes]:
    """The key id and the nonce + ciphertext + tag of a sealed value; DecryptionError (never an
    IndexError or a UnicodeDecodeError) for bytes that cannot be one, whatever a damaged row holds."""
    if len(sealed) < 2 or sealed[:1] != _VERSION:
        raise DecryptionError("unknown format")
    end = 2 + sealed[1]
    if sealed[1] == 0 or len(sealed) < end + _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError("truncated value")
    try:
        key_id = sealed[2:end].decode()
    except UnicodeDecodeError as exc:
        raise DecryptionError("malformed key id") from exc
    return key_id, sealed[end:]


class BlindIndex:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("blind index key must be at least 32 bytes")
        self._key = key

    def of(self, value: str, *, kind: str) -> bytes:
        """Index of a normalised value; `kind` separates namespaces (phone vs id number)."""
        # hmac.digest: the same HMAC in one C call, without building an HMAC object per value
        # (three blind indexes per imported row).
        return hmac.digest(self._key, f"{kind}\x00{value}".encode(), "sha256")


def generate_key() -> str:
    """A new random 256-bit key in the environment's base64 form."""
    return base64.b64encode(os.urandom(32)).decode()
