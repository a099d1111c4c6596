"""Whether a complaint may be filed for a customer, by feedback's read model of profile. No I/O.

The read model lags profile by the feed's delay (well under a second while both run), and it
cannot be trusted at all while profile's feed is not connected (profile down, feedback just
started and profile idle, or the cursor expired). A complaint is a regulatory duty: it must not be
lost because a peer is down. So:

- a customer the model knows as active: accepted;
- a customer the model knows as merged: refused FAILED_PRECONDITION `CUSTOMER_MERGED` (file it
  against the survivor, named in the ErrorInfo metadata); as erased or deleted: NOT_FOUND;
- a customer the model does not know, while the model is current (following profile's feed
  live): refused NOT_FOUND `CUSTOMER_NOT_FOUND`, with the model's `customers_as_of` in the
  metadata (a customer created in the last moment may simply not have arrived: retry);
- a customer the model does not know while the model is not current: accepted unverified (logged
  `complaint_customer_unverified`), so complaints keep flowing while profile is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crmkit.errors import FailedPrecondition, NotFound

ACTIVE, MERGED, ERASED, DELETED = 1, 2, 3, 0


@dataclass(frozen=True)
class KnownCustomer:
    customer_id: str
    state: int
    merged_into: str = ""
    relationship_manager_id: str = ""


@dataclass(frozen=True)
class ModelState:
    """How far the read model can be trusted now."""

    following: bool  # profile's feed connected and not expired
    as_of: datetime | None  # when the newest applied event happened at profile


def verify(customer_id: str, known: KnownCustomer | None, model: ModelState | None) -> bool:
    """True when the customer is verified, False when accepted unverified; raises when refused.
    `model` None means feedback does not follow profile (no check at all)."""
    if model is None:
        return False
    if known is not None:
        if known.state == ACTIVE:
            return True
        if known.state == MERGED:
            raise FailedPrecondition(f"customer {customer_id} was merged into {known.merged_into}",
                                     reason="CUSTOMER_MERGED", metadata={"survivor": f"customers/{known.merged_into}"})
        raise NotFound(f"customer {customer_id} does not exist (erased or deleted)", reason="CUSTOMER_NOT_FOUND")
    if model.following and model.as_of is not None:
        raise NotFound(f"customer {customer_id} is not known to profile (as of {model.as_of.isoformat()})",
                       reason="CUSTOMER_NOT_FOUND",
                       metadata={"customer": f"customers/{customer_id}", "customers_as_of": model.as_of.isoformat()})
    return False
