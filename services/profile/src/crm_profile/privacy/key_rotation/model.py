"""Key rotation as the service's code sees it (enum numbers are the contract's)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class KeyPurpose(IntEnum):
    UNSPECIFIED = 0
    FIELD_ENCRYPTION = 1
    BLIND_INDEX = 2


@dataclass(frozen=True)
class RotationResult:
    rewritten: int
    retired_key_ids: tuple[str, ...]
