"""Field history's enums as the service's code sees them (values are the proto numbers)."""

from __future__ import annotations

from enum import IntEnum


class FieldChangeKind(IntEnum):
    UNSPECIFIED = 0
    SET = 1
    CLEARED = 2
    CONFIRMED = 3
    ERASED = 4


class ChangeSource(IntEnum):
    UNSPECIFIED = 0
    API = 1
    IMPORT = 2
    MERGE = 3
    UNMERGE = 4
    ERASURE = 5
    RETENTION = 6
