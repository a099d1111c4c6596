"""Whose book a customer is in: the one rule every relationship-manager check of campaign uses
(care tasks, contact history, next best action, loyalty; renewals applies it as a filter on the
books' manager column). The manager is the books' (`book.tables.customer_manager`). No I/O."""

from __future__ import annotations

from crmkit.auth import Principal
from crmkit.errors import PermissionDenied


def in_book(actor: Principal, relationship_manager_id: str | None) -> bool:
    """Whether `actor` may act on a customer managed by `relationship_manager_id` (None: the
    customer is not in the copy of profile's customers). A caller with a broader role than
    relationship manager sees every customer; a relationship manager only their own book, so a
    customer the copy does not know yet (profile's feed lags, or profile is down) is refused."""
    if not actor.is_relationship_manager_only:
        return True
    return bool(relationship_manager_id) and relationship_manager_id == actor.subject


def check_in_book(actor: Principal, customer_id: str, relationship_manager_id: str | None, *,
                  reason: str = "NOT_IN_BOOK") -> None:
    """Raise PERMISSION_DENIED unless `in_book`. `reason` keeps the error reason each area's
    contract already names (care and history `NOT_IN_BOOK`, next best action `OUTSIDE_BOOK`,
    loyalty `CUSTOMER_OUTSIDE_BOOK`); the decision is the same for all."""
    if not in_book(actor, relationship_manager_id):
        raise PermissionDenied(f"customer {customer_id} is not in your book", reason=reason,
                               metadata={"customer_id": customer_id})
