"""Whose book a customer is in: the one rule every relationship-manager check uses. No I/O."""

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


def check_in_book(actor: Principal, customer_id: str, relationship_manager_id: str | None) -> None:
    if not in_book(actor, relationship_manager_id):
        raise PermissionDenied(f"customer {customer_id} is not in your book", reason="NOT_IN_BOOK",
                               metadata={"customer_id": customer_id})
