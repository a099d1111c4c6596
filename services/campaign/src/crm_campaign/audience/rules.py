"""Pure audience decisions: the control-group split."""

from __future__ import annotations

import hashlib
from decimal import Decimal

_SCALE = 2 ** 64


def in_control_group(*, seed: int, customer_id: str, holdout_percentage: Decimal) -> bool:
    """Whether the customer is held out: a uniform draw in [0, 1) from a hash of the campaign's
    stored seed and the customer id, below the hold-out share. Random across campaigns (each has
    its own seed), the same for the same seed and customer: a rebuild reproduces the split."""
    if holdout_percentage <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{customer_id}".encode()).digest()
    draw = Decimal(int.from_bytes(digest[:8], "big")) / _SCALE
    return draw < holdout_percentage / 100
