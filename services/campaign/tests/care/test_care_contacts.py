"""A care task completed with a contact counts as a contact for the frequency caps of audience
builds; one completed without a contact does not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from crm.campaign.v1 import campaign_pb2, care_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm_campaign.audience.funnel import Plan
from crm_campaign.audience.inputs import AudienceInputs
from crm_campaign.audience.read_models import segment_member
from crm_campaign.campaigns.model import Channel, ChannelStrategy
from crmkit.auth import Role
from crmkit.testing import bearer
from crmkit.values import timestamp

MARKETER = bearer(Role.MARKETER, subject="marketer-a")


async def test_completed_care_contacts_count_against_caps(campaigns, campaign_service) -> None:
    _, runtime = campaign_service
    segment, customer_id = f"seg-{uuid.uuid4().hex[:8]}", f"cc-{uuid.uuid4().hex[:8]}"
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.insert(segment_member).values(segment_id=segment, customer_id=customer_id))
    for outcome, channel in ((care_pb2.CARE_TASK_OUTCOME_CONTACTED, campaign_pb2.CHANNEL_CALL_CENTRE),
                             (care_pb2.CARE_TASK_OUTCOME_NOT_REACHED, campaign_pb2.CHANNEL_UNSPECIFIED)):
        task = (await campaigns.CreateCareTask(pb.CreateCareTaskRequest(care_task=care_pb2.CareTask(
            customer=f"customers/{customer_id}", kind=care_pb2.CARE_TASK_KIND_SERVICE_REVIEW, title="Annual review",
            assignee="rm-1", due_time=timestamp(datetime.now(UTC) + timedelta(days=1)))),
            metadata=MARKETER)).care_task
        await campaigns.CompleteCareTask(pb.CompleteCareTaskRequest(name=task.name, outcome=outcome,
                                                                    contact_channel=channel), metadata=MARKETER)
    plan = Plan(campaign_id="any", segment=f"segments/{segment}", channels=(Channel.SMS,),
                strategy=ChannelStrategy.FIXED_ORDER, offers=())
    async with runtime.db.unit_of_work(read_only=True) as uow:
        [candidate] = await AudienceInputs().candidates(uow, plan, now=datetime.now(UTC),
                                                        cap_horizon=timedelta(days=7))
    assert [(c.campaign_id, c.channel) for c in candidate.contacts] == [("", Channel.CALL_CENTRE)]
