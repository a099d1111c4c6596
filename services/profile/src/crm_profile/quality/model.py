"""The data-quality report's enums as the service's code sees them (values are the proto numbers)."""

from __future__ import annotations

from enum import IntEnum


class QualityFlag(IntEnum):
    UNSPECIFIED = 0
    COMPLETENESS_BELOW_THRESHOLD = 1
    ERROR_RATE_ABOVE_THRESHOLD = 2
