"""What each contact came to: the furthest result reached, at the earliest time it was reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm.campaign.v1 import engagement_pb2
from crm_campaign.campaigns.model import Channel
from crm_campaign.dispatch.model import DispatchState
from crm_campaign.engagement.model import ResponseType
from crm_campaign.history import rules
from crm_campaign.history.model import Contact, ContactResult, Outcome
from crmkit.testing import assert_enum_mirrors

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


SENT = Contact(entry_key="d:d1", campaign_id="a", offer_id="o1", channel=Channel.SMS, contact_at=T0,
               dispatch_id="d1", dispatch_state=DispatchState.SENT)
SHOWN = Contact(entry_key="r:r1", campaign_id="a", offer_id="o1", channel=Channel.MOBILE_APP, contact_at=T0,
                group_ref="dec-1")


def response(type_: ResponseType, minutes: int, *, dispatch_id: str = "d1", group_ref: str = "",
             channel: int = Channel.SMS, campaign_id: str = "a") -> Outcome:
    return Outcome(campaign_id=campaign_id, dispatch_id=dispatch_id, group_ref=group_ref or "x", offer_id="o1",
                   channel=channel, response_type=type_, at=at(minutes))


def test_the_results_mirror_the_contract_in_order() -> None:
    assert_enum_mirrors(ContactResult, engagement_pb2.ContactResult, prefix="CONTACT_RESULT_")


def test_a_dispatch_reaches_its_furthest_result_at_the_first_time_it_was_reached() -> None:
    outcomes = [response(ResponseType.OPENED, 1), response(ResponseType.CLICKED, 5), response(ResponseType.CLICKED, 3),
                response(ResponseType.ACCEPTED, 9, dispatch_id="other"), response(ResponseType.ACCEPTED, 9,
                                                                                  campaign_id="b")]
    entry = rules.entry(SENT, outcomes)
    assert (entry.result, entry.result_at) == (ContactResult.CLICKED, at(3))
    converted = rules.entry(SENT, [*outcomes, Outcome("a", "d1", "", "o1", 0, 0, at(20), conversion=True)])
    assert (converted.result, converted.result_at) == (ContactResult.CONVERTED, at(20))
    assert (rules.entry(SENT, []).result, rules.entry(SENT, []).result_at) == (ContactResult.NO_RESPONSE, None)


def test_a_failed_dispatch_is_a_delivery_failure_and_an_inbound_contact_groups_by_decision() -> None:
    failed = rules.entry(Contact(entry_key="d:d2", campaign_id="a", offer_id="o1", channel=Channel.SMS, contact_at=T0,
                                 dispatch_id="d2", dispatch_state=DispatchState.FAILED), [])
    assert (failed.result, failed.result_at) == (ContactResult.DELIVERY_FAILED, T0)
    inbound = [response(ResponseType.SHOWN, 0, dispatch_id="", group_ref="dec-1", channel=Channel.MOBILE_APP),
               response(ResponseType.INTERESTED, 2, dispatch_id="", group_ref="dec-1", channel=Channel.MOBILE_APP),
               response(ResponseType.ACCEPTED, 4, dispatch_id="", group_ref="dec-2", channel=Channel.MOBILE_APP),
               response(ResponseType.ACCEPTED, 4, dispatch_id="d1", group_ref="dec-1")]
    entry = rules.entry(SHOWN, inbound)
    assert (entry.result, entry.result_at) == (ContactResult.INTERESTED, at(2))
