"""ListContactHistory request -> filter, history entry -> ContactHistoryEntry. No rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crm.campaign.v1 import campaign_pb2, campaign_service_pb2, engagement_pb2
from crm_campaign.campaigns.rules import CAMPAIGN_ID
from crm_campaign.history.model import HistoryEntry, HistoryFilter
from crmkit.errors import FieldViolation
from crmkit.resources import ResourceName
from crmkit.validation import Violations
from crmkit.values import set_timestamps

CUSTOMER = ResourceName("customers/{customer_id}")
CAMPAIGN = ResourceName("campaigns/{campaign_id}", id_pattern=CAMPAIGN_ID.pattern)


def _time(message: Timestamp, field: str, bad: list[FieldViolation]) -> datetime | None:
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        bad.append(FieldViolation(field, "must be a valid timestamp"))
        return None


def filter_to_domain(request: campaign_service_pb2.ListContactHistoryRequest, violations: Violations
                     ) -> HistoryFilter:
    """The request's filter; a missing customer and names or times that cannot be read are recorded
    in `violations`, so that the service reports them with every other bad field."""
    customer_id = ""
    if CUSTOMER.check(request.customer, "customer", violations, required=True):
        customer_id = CUSTOMER.id_in(request.customer) or ""
    campaign_id = ""
    if request.campaign and CAMPAIGN.check(request.campaign, "campaign", violations):
        campaign_id = CAMPAIGN.id_in(request.campaign) or ""
    bad: list[FieldViolation] = []
    interval = request.contact_interval
    start = (_time(interval.start_time, "contact_interval.start_time", bad) if interval.HasField("start_time")
             else None)
    end = _time(interval.end_time, "contact_interval.end_time", bad) if interval.HasField("end_time") else None
    for violation in bad:
        violations.add(violation.field, violation.description)
    return HistoryFilter(customer_id=customer_id, channel=request.channel, campaign_id=campaign_id,
                         contact_from=start, contact_until=end)


def entry_to_proto(entry: HistoryEntry) -> engagement_pb2.ContactHistoryEntry:
    contact = entry.contact
    message = engagement_pb2.ContactHistoryEntry(
        campaign=f"campaigns/{contact.campaign_id}", campaign_display_name=contact.campaign_display_name,
        offer=f"campaigns/{contact.campaign_id}/offers/{contact.offer_id}",
        offer_display_name=contact.offer_display_name, product_code=contact.product_code,
        channel=campaign_pb2.Channel.ValueType(contact.channel),
        result=engagement_pb2.ContactResult.ValueType(entry.result),
        dispatch=f"campaigns/{contact.campaign_id}/dispatches/{contact.dispatch_id}" if contact.dispatch_id else "",
        relationship_manager_id=contact.relationship_manager_id)
    set_timestamps(message, contact_time=contact.contact_at, result_time=entry.result_at)
    return message
