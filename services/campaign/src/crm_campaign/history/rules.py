"""Pure decisions about contact history: what a valid request is and what each contact came to."""

from __future__ import annotations

from collections.abc import Iterable

from crm_campaign.campaigns import rules as campaign_rules
from crm_campaign.dispatch.model import DispatchState
from crm_campaign.engagement.model import ResponseType
from crm_campaign.history.model import Contact, ContactResult, HistoryEntry, HistoryFilter, Outcome
from crmkit.resources import Purpose, check_purpose
from crmkit.validation import Violations

PURPOSE_REQUIRED = "is required: say why the contact history is read, e.g. ACCESS_PURPOSE_CUSTOMER_SERVICE"

# The result each response type reaches; SHOWN is the (inbound) contact itself, not a result.
RESULT_OF_RESPONSE = {
    ResponseType.SHOWN: ContactResult.NO_RESPONSE,
    ResponseType.OPENED: ContactResult.OPENED,
    ResponseType.CLICKED: ContactResult.CLICKED,
    ResponseType.INTERESTED: ContactResult.INTERESTED,
    ResponseType.ACCEPTED: ContactResult.ACCEPTED,
    ResponseType.DECLINED: ContactResult.DECLINED,
    ResponseType.OPTED_OUT: ContactResult.OPTED_OUT,
}
# Dispatch states that are contacts: sent (or delivered), or failed for good.
CONTACT_STATES = (int(DispatchState.SENT), int(DispatchState.DELIVERED), int(DispatchState.FAILED))


def validate(query: HistoryFilter, purpose: Purpose, v: Violations) -> Violations:
    """The filter's rules (the customer's name is read, and required, by the caller's mapping)."""
    v.enum(query.channel, "channel", campaign_rules.CHANNELS, "Channel")
    if query.contact_from is not None and query.contact_until is not None:
        v.check(query.contact_from <= query.contact_until, "contact_interval",
                "start_time must not be after end_time")
    check_purpose(purpose, v, required=PURPOSE_REQUIRED)
    return v


def belongs_to(outcome: Outcome, contact: Contact) -> bool:
    """A dispatch's outcomes name it; an inbound contact's responses share its offer, channel and
    decision (or are its one response)."""
    if outcome.campaign_id != contact.campaign_id:
        return False
    if contact.dispatch_id:
        return outcome.dispatch_id == contact.dispatch_id
    return (not outcome.conversion and not outcome.dispatch_id and outcome.group_ref == contact.group_ref
            and (outcome.offer_id, outcome.channel) == (contact.offer_id, contact.channel))


def entry(contact: Contact, outcomes: Iterable[Outcome]) -> HistoryEntry:
    """The contact with the furthest result reached (the earliest time it was reached)."""
    if contact.dispatch_state == DispatchState.FAILED:
        return HistoryEntry(contact, ContactResult.DELIVERY_FAILED, contact.contact_at)
    best, best_at = ContactResult.NO_RESPONSE, None
    for outcome in outcomes:
        if not belongs_to(outcome, contact):
            continue
        result = (ContactResult.CONVERTED if outcome.conversion
                  else RESULT_OF_RESPONSE.get(ResponseType(outcome.response_type), ContactResult.NO_RESPONSE))
        if result == ContactResult.NO_RESPONSE:
            continue
        if result > best or (result == best and best_at is not None and outcome.at < best_at):
            best, best_at = result, outcome.at
    return HistoryEntry(contact, best, best_at)
