"""Contact history as the service's code sees it: plain values, no protos.

A contact is an offer that reached a customer: a dispatch sent (or failed for good) on an
outbound channel, or an inbound contact recorded as responses without a dispatch (an offer shown
in the app, presented on an RM visit). Its result is the furthest response since."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum


class ContactResult(IntEnum):
    """crm.campaign.v1.ContactResult, in order from none to the furthest."""

    UNSPECIFIED = 0
    NO_RESPONSE = 1
    DELIVERY_FAILED = 2
    OPENED = 3
    CLICKED = 4
    INTERESTED = 5
    DECLINED = 6
    OPTED_OUT = 7
    ACCEPTED = 8
    CONVERTED = 9


@dataclass(frozen=True)
class Contact:
    # "d:<dispatch_id>" or "r:<first response id>": with `contact_at`, the key pages run on.
    entry_key: str
    campaign_id: str
    offer_id: str
    channel: int
    contact_at: datetime
    campaign_display_name: str = ""
    offer_display_name: str = ""
    product_code: str = ""
    dispatch_id: str = ""
    # The dispatch's DispatchState; 0 for inbound contacts.
    dispatch_state: int = 0
    # What ties an inbound contact's responses together: their decision id, or the one response's id.
    group_ref: str = ""
    relationship_manager_id: str = ""


@dataclass(frozen=True)
class Outcome:
    """Something the customer did after a contact: a response (by type) or a conversion."""

    campaign_id: str
    dispatch_id: str
    group_ref: str
    offer_id: str
    channel: int
    response_type: int  # engagement.model.ResponseType; 0 for a conversion
    at: datetime
    conversion: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    contact: Contact
    result: ContactResult
    result_at: datetime | None


@dataclass(frozen=True)
class HistoryFilter:
    customer_id: str
    channel: int = 0
    campaign_id: str = ""
    contact_from: datetime | None = None
    contact_until: datetime | None = None
