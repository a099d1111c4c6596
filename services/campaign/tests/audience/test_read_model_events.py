"""The read models' apply functions on campaign's database: segment membership from segment's
MembershipChange events, open complaints from feedback's complaint events (and what they ignore)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from google.protobuf import any_pb2

from crm.common.v1 import change_event_pb2
from crm.feedback.v1 import complaint_pb2, sla_pb2
from crm.profile.v1 import consent_pb2
from crm.segment.v1 import segment_pb2
from crm_campaign.audience import complaints, contactability, memberships
from crm_campaign.audience.read_models import customer_contact, open_complaint, segment_member
from crm_campaign.campaigns.model import Channel

E = change_event_pb2


def event(resource_type: str, name: str, change_type: int, payload: Any) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(payload)
    return change_event_pb2.ChangeEvent(resource_type=resource_type, resource_name=name, change_type=change_type,
                                        payload=packed)


async def test_membership_entries_and_exits_keep_the_segment_copy(campaign_service) -> None:
    _, runtime = campaign_service
    segment, customer = f"seg-{uuid.uuid4().hex[:8]}", "c-1"

    def change(kind: int) -> change_event_pb2.ChangeEvent:
        return event(memberships.MEMBER_TYPE, f"segments/{segment}/members/{customer}", E.CHANGE_TYPE_EVENT,
                     segment_pb2.MembershipChange(segment=f"segments/{segment}", customer=f"customers/{customer}",
                                                  kind=kind))

    async def members() -> list[str]:
        async with runtime.db.unit_of_work(read_only=True) as uow:
            return list((await uow.execute(sa.select(segment_member.c.customer_id).where(
                segment_member.c.segment_id == segment))).scalars())

    async with runtime.db.unit_of_work() as uow:
        assert await memberships.apply(uow, change(segment_pb2.MEMBERSHIP_CHANGE_KIND_ENTERED))
        assert await memberships.apply(uow, change(segment_pb2.MEMBERSHIP_CHANGE_KIND_ENTERED)), "at least once"
    assert await members() == [customer]
    async with runtime.db.unit_of_work() as uow:
        assert await memberships.apply(uow, change(segment_pb2.MEMBERSHIP_CHANGE_KIND_LEFT))
        assert not await memberships.apply(uow, event("crm.segment.v1.Segment", f"segments/{segment}",
                                                      E.CHANGE_TYPE_UPDATED, segment_pb2.Segment()))
    assert await members() == []


async def test_complaints_open_and_close_in_the_copy_and_an_sla_breach_changes_nothing(campaign_service) -> None:
    _, runtime = campaign_service
    complaint_id, customer = f"CMP-{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex[:6]}"
    name = f"complaints/{complaint_id}"

    def filed(status: int) -> complaint_pb2.Complaint:
        return complaint_pb2.Complaint(name=name, complaint_id=complaint_id, customer=f"customers/{customer}",
                                       status=status)

    async def open_ones() -> list[str]:
        async with runtime.db.unit_of_work(read_only=True) as uow:
            return list((await uow.execute(sa.select(open_complaint.c.complaint_id).where(
                open_complaint.c.customer_id == customer))).scalars())

    async with runtime.db.unit_of_work() as uow:
        assert await complaints.apply(uow, event(complaints.COMPLAINT_TYPE, name, E.CHANGE_TYPE_CREATED,
                                                 filed(complaint_pb2.COMPLAINT_STATUS_OPEN)))
        assert not await complaints.apply(uow, event(complaints.COMPLAINT_TYPE, name, E.CHANGE_TYPE_EVENT,
                                                     sla_pb2.SlaBreach()))
    assert await open_ones() == [complaint_id]
    resolved = complaint_pb2.ComplaintStepEvent(complaint=filed(complaint_pb2.COMPLAINT_STATUS_RESOLVED))
    async with runtime.db.unit_of_work() as uow:
        assert await complaints.apply(uow, event(complaints.COMPLAINT_TYPE, name, E.CHANGE_TYPE_EVENT, resolved))
    assert await open_ones() == []
    reopened = complaint_pb2.ComplaintStepEvent(complaint=filed(complaint_pb2.COMPLAINT_STATUS_REOPENED))
    async with runtime.db.unit_of_work() as uow:
        assert await complaints.apply(uow, event(complaints.COMPLAINT_TYPE, name, E.CHANGE_TYPE_EVENT, reopened))
    assert await open_ones() == [complaint_id]


async def test_marketing_consent_and_preferences_make_the_contactability_copy(campaign_service) -> None:
    _, runtime = campaign_service
    customer = f"c-{uuid.uuid4().hex[:8]}"

    def consent(channel: int, decision: int, purpose: int = consent_pb2.CONSENT_PURPOSE_MARKETING) -> Any:
        return event(contactability.CONSENT_TYPE, f"customers/{customer}/consentRecords/{uuid.uuid4()}",
                     E.CHANGE_TYPE_CREATED, consent_pb2.ConsentRecord(purpose=purpose, channel=channel,
                                                                      decision=decision))

    async def row() -> Any:
        async with runtime.db.unit_of_work(read_only=True) as uow:
            return (await uow.execute(sa.select(customer_contact).where(
                customer_contact.c.customer_id == customer))).one()

    async with runtime.db.unit_of_work() as uow:
        assert await contactability.apply(uow, consent(consent_pb2.CONTACT_CHANNEL_SMS,
                                                       consent_pb2.CONSENT_DECISION_OPT_IN))
        assert await contactability.apply(uow, consent(consent_pb2.CONTACT_CHANNEL_MOBILE_APP,
                                                       consent_pb2.CONSENT_DECISION_OPT_IN))
        assert not await contactability.apply(uow, consent(consent_pb2.CONTACT_CHANNEL_EMAIL,
                                                           consent_pb2.CONSENT_DECISION_OPT_IN,
                                                           purpose=consent_pb2.CONSENT_PURPOSE_SURVEYS))
        assert await contactability.apply(uow, consent(consent_pb2.CONTACT_CHANNEL_SMS,
                                                       consent_pb2.CONSENT_DECISION_OPT_OUT))
        assert await contactability.apply(uow, event(
            contactability.PREFERENCES_TYPE, f"customers/{customer}/contactPreferences", E.CHANGE_TYPE_UPDATED,
            consent_pb2.ContactPreferences(preferred_channels=[consent_pb2.CONTACT_CHANNEL_MOBILE_APP],
                                           time_zone="Asia/Shanghai", do_not_contact=True)))
    found = await row()
    assert found.consented_channels == [int(Channel.MOBILE_APP)], "the SMS opt-out is the latest decision"
    assert (found.do_not_contact, found.preferred_channel, found.time_zone) == (True, Channel.MOBILE_APP,
                                                                                 "Asia/Shanghai")
