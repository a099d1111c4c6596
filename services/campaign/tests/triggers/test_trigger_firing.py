"""Trigger rules firing on peer feed events, against campaign's real database: the events go through
the same apply the profile and segment followers run (read model first, then the triggers, in one
transaction). Replaying the feed fires nothing twice; the cool-down spaces repeated events."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2, duration_pb2
from google.type import date_pb2, decimal_pb2, money_pb2

from crm.campaign.v1 import campaign_pb2, care_pb2, trigger_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, event_pb2, holding_pb2
from crm.segment.v1 import segment_pb2
from crm_campaign import tables
from crm_campaign.api import care_messages, dispatch_messages
from crm_campaign.audience import contactability, memberships, peers
from crm_campaign.audience.read_models import customer_contact
from crm_campaign.audience.repository import AudienceRepository
from crm_campaign.audience.service import Audiences
from crm_campaign.book import follower as book_follower
from crm_campaign.campaigns.model import Channel
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.care.repository import CareTaskRepository
from crm_campaign.care.service import CARE_TASK_TYPE, RaisedCareTasks
from crm_campaign.care.tables import care_task
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatches
from crm_campaign.dispatch.tables import dispatch
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.triggers.calendar_repository import CalendarRepository
from crm_campaign.triggers.calendar_scan import CalendarScan
from crm_campaign.triggers.candidates import TriggerCandidates
from crm_campaign.triggers.firing import TriggerFiring
from crm_campaign.triggers.firing_repository import FiringRepository
from crm_campaign.triggers.model import FiringOutcome
from crmkit.auth import Role
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.testing import bearer
from crmkit.values import timestamp

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
T = trigger_pb2
E = change_event_pb2
DAY = 86_400


def days(n: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=n * DAY)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def feed_event(resource_type: str, name: str, change_type: int, payload: Any, *, at: datetime | None = None
               ) -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(payload)
    return E.ChangeEvent(event_id=str(uuid.uuid4()), resource_type=resource_type, resource_name=name,
                         change_type=change_type, payload=packed, occurred_at=timestamp(at or datetime.now(UTC)))


def entered(segment: str, customer: str, *, at: datetime | None = None) -> change_event_pb2.ChangeEvent:
    return feed_event(memberships.MEMBER_TYPE, f"{segment}/members/{customer}", E.CHANGE_TYPE_EVENT,
                      segment_pb2.MembershipChange(segment=segment, customer=f"customers/{customer}",
                                                   kind=segment_pb2.MEMBERSHIP_CHANGE_KIND_ENTERED), at=at)


def card_application(customer: str, application_id: str, outcome: int, product: str = "CC-GOLD"
                     ) -> change_event_pb2.ChangeEvent:
    return feed_event("crm.profile.v1.CustomerEvent", f"customers/{customer}/events/{uuid.uuid4()}",
                      E.CHANGE_TYPE_EVENT, event_pb2.CustomerEvent(
                          event_id=str(uuid.uuid4()), customer=f"customers/{customer}",
                          event_type=event_pb2.EVENT_TYPE_CARD_APPLICATION, product_code=product,
                          occur_time=timestamp(datetime.now(UTC)),
                          application=event_pb2.ApplicationDetail(application_id=application_id, outcome=outcome)))


def payroll_credit(customer: str, at: datetime, units: int) -> change_event_pb2.ChangeEvent:
    return feed_event("crm.profile.v1.CustomerEvent", f"customers/{customer}/events/{uuid.uuid4()}",
                      E.CHANGE_TYPE_EVENT, event_pb2.CustomerEvent(
                          event_id=str(uuid.uuid4()), customer=f"customers/{customer}",
                          event_type=event_pb2.EVENT_TYPE_PAYROLL_CREDIT, occur_time=timestamp(at),
                          transaction=event_pb2.TransactionDetail(
                              amount=money_pb2.Money(currency_code="CNY", units=units),
                              direction=event_pb2.TRANSACTION_DIRECTION_CREDIT,
                              kind=event_pb2.TRANSACTION_KIND_SALARY)))


def customer_event(customer: str, manager: str) -> change_event_pb2.ChangeEvent:
    return feed_event("crm.profile.v1.Customer", f"customers/{customer}", E.CHANGE_TYPE_UPDATED, customer_pb2.Customer(
        name=f"customers/{customer}", customer_id=customer, relationship_manager_id=manager))


def holding(customer: str, product: str, matures: date, units: int) -> change_event_pb2.ChangeEvent:
    name = f"customers/{customer}/holdings/{uuid.uuid4().hex[:8]}"
    return feed_event("crm.profile.v1.Holding", name, E.CHANGE_TYPE_UPDATED, holding_pb2.Holding(
        name=name, product_code=product, status=holding_pb2.HOLDING_STATUS_ACTIVE,
        balance=money_pb2.Money(currency_code="CNY", units=units),
        maturity_date=date_pb2.Date(year=matures.year, month=matures.month, day=matures.day)))


@pytest.fixture
def feeds(campaign_service: tuple[Any, Any]) -> Any:
    """`await feeds.segment(event)` / `await feeds.profile(event)`: one event applied as the followers
    apply it (read model, then triggers, one transaction); `await feeds.firings(rule)` reads back."""
    _, runtime = campaign_service
    campaigns_ = CampaignRepository()
    dispatches = Dispatches(repository=DispatchRepository(), campaigns=campaigns_, outbox=Outbox(tables.outbox_event),
                            page_tokens=PageTokens(b"k" * 32), feed_payload=dispatch_messages.to_proto)
    repository = FiringRepository()
    firing = TriggerFiring(repository=repository, campaigns=campaigns_, offers=OfferRepository(),
                           audiences=Audiences(repository=AudienceRepository(), campaigns=campaigns_,
                                               dispatches=dispatches),
                           dispatches=dispatches, candidates=TriggerCandidates(),
                           care_tasks=RaisedCareTasks(repository=CareTaskRepository(),
                                                      outbox=Outbox(tables.outbox_event),
                                                      feed_payload=care_messages.to_proto))

    class Feeds:
        trigger_firing = firing
        segment_apply = staticmethod(peers.together(memberships.apply, firing.apply))
        profile_apply = staticmethod(peers.together(contactability.apply, firing.apply))

        async def segment(self, event: change_event_pb2.ChangeEvent) -> bool:
            async with runtime.db.unit_of_work() as uow:
                return await self.segment_apply(uow, event)

        async def profile(self, event: change_event_pb2.ChangeEvent) -> bool:
            async with runtime.db.unit_of_work() as uow:
                return await self.profile_apply(uow, event)

        async def firings(self, rule: trigger_pb2.TriggerRule) -> list[Any]:
            async with runtime.db.unit_of_work(read_only=True) as uow:
                return await repository.firings(uow, rule.trigger_rule_id)

        async def dispatches(self, campaign_id: str, customer: str) -> list[Any]:
            async with runtime.db.unit_of_work(read_only=True) as uow:
                return list((await uow.execute(sa.select(dispatch).where(
                    dispatch.c.campaign_id == campaign_id, dispatch.c.customer_id == customer))).all())

        async def care_tasks(self, customer: str) -> list[Any]:
            async with runtime.db.unit_of_work(read_only=True) as uow:
                return list((await uow.execute(sa.select(care_task).where(care_task.c.customer_id == customer)
                                               )).all())

        async def care_events(self, customer: str) -> int:
            async with runtime.db.unit_of_work(read_only=True) as uow:
                names = sa.select(sa.literal("careTasks/") + care_task.c.care_task_id).where(
                    care_task.c.customer_id == customer)
                return int(await uow.scalar(sa.select(sa.func.count()).select_from(tables.outbox_event).where(
                    tables.outbox_event.c.resource_type == CARE_TASK_TYPE,
                    tables.outbox_event.c.resource_name.in_(names))) or 0)

        async def in_book(self, customer: str, manager: str) -> None:
            """Book's own follower has applied the customer's Customer event (its public apply)."""
            async with runtime.db.unit_of_work() as uow:
                await book_follower.apply(uow, customer_event(customer, manager))  # type: ignore[arg-type]

        async def reachable(self, customer: str, *channels: Channel) -> None:
            async with runtime.db.unit_of_work() as uow:
                await uow.execute(sa.insert(customer_contact).values(
                    customer_id=customer, consented_channels=[int(c) for c in channels],
                    reachable_channels=[int(c) for c in channels]))

    return Feeds()


async def create_rule(campaigns: Any, **fields: Any) -> trigger_pb2.TriggerRule:
    rule = T.TriggerRule(trigger_rule_id=unique("rule"), display_name="Trigger under test", **fields)
    if not rule.WhichOneof("action"):
        rule.care_task_action.CopyFrom(T.CareTaskAction(kind=care_pb2.CARE_TASK_KIND_OTHER, title="Call"))
    return (await campaigns.CreateTriggerRule(pb.CreateTriggerRuleRequest(trigger_rule=rule),
                                              metadata=MARKETER)).trigger_rule


async def get_rule(campaigns: Any, rule: trigger_pb2.TriggerRule) -> trigger_pb2.TriggerRule:
    return (await campaigns.GetTriggerRule(pb.GetTriggerRuleRequest(name=rule.name), metadata=MARKETER)).trigger_rule


async def test_a_replayed_segment_entry_fires_once_and_queues_one_dispatch(campaigns, feeds, running_campaign,
                                                                           new_campaign) -> None:
    campaign, [offer] = await running_campaign(new_campaign(
        type=campaign_pb2.CAMPAIGN_TYPE_TRIGGERED,
        control_group=campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="0"))))
    segment, customer = f"segments/{unique('new-payroll')}", unique("cust")
    rule = await create_rule(campaigns, segment_entry=T.SegmentEntryCondition(segment=segment),
                             offer_action=T.OfferAction(campaign=campaign.name, offer=offer.name))
    await feeds.reachable(customer, Channel.SMS)
    event = entered(segment, customer)
    assert await feeds.segment(event)
    # The feed is replayed (a restart before the cursor moved, a peer resending a batch).
    await feeds.segment(event)
    await feeds.segment(event)
    [firing] = await feeds.firings(rule)
    assert (firing.customer_id, firing.outcome, firing.offer_id) == (customer, FiringOutcome.DISPATCH_QUEUED,
                                                                     offer.offer_id)
    [sent] = await feeds.dispatches(campaign.campaign_id, customer)
    assert (sent.offer_id, sent.channel) == (offer.offer_id, int(Channel.SMS))
    counted = await get_rule(campaigns, rule)
    assert counted.fire_count == 1 and counted.HasField("last_fire_time")
    assert counted.etag == rule.etag, "firing is not a change of the rule"


async def test_the_cooldown_spaces_repeated_events_and_a_disabled_rule_ignores_them(campaigns, feeds) -> None:
    segment, customer = f"segments/{unique('vip')}", unique("cust")
    rule = await create_rule(campaigns, segment_entry=T.SegmentEntryCondition(segment=segment), cooldown=days(10))
    now = datetime.now(UTC)
    await feeds.segment(entered(segment, customer, at=now))
    await feeds.segment(entered(segment, customer, at=now + timedelta(days=3)))  # re-entry within 10 days
    await feeds.segment(entered(segment, customer, at=now + timedelta(days=11)))
    outcomes = [f.outcome for f in await feeds.firings(rule)]
    assert outcomes == [FiringOutcome.NO_RELATIONSHIP_MANAGER, FiringOutcome.COOLED_DOWN,
                        FiringOutcome.NO_RELATIONSHIP_MANAGER]
    assert (await get_rule(campaigns, rule)).fire_count == 2
    other = unique("cust")
    await campaigns.UpdateTriggerRule(pb.UpdateTriggerRuleRequest(
        trigger_rule=T.TriggerRule(name=rule.name, state=T.TRIGGER_RULE_STATE_DISABLED),
        update_mask={"paths": ["state"]}), metadata=MARKETER)
    await feeds.segment(entered(segment, other))
    assert len(await feeds.firings(rule)) == 3


async def test_a_population_segment_limits_who_the_rule_fires_for(campaigns, feeds) -> None:
    population, segment = f"segments/{unique('pop')}", f"segments/{unique('entry')}"
    inside, outside = unique("cust"), unique("cust")
    rule = await create_rule(campaigns, segment_entry=T.SegmentEntryCondition(segment=segment),
                             population_segment=population)
    await feeds.segment(entered(population, inside))
    await feeds.segment(entered(segment, inside))
    await feeds.segment(entered(segment, outside))
    assert [f.customer_id for f in await feeds.firings(rule)] == [inside]


async def test_an_application_fires_once_on_submission_or_on_approval(campaigns, feeds) -> None:
    product = unique("CC").upper()
    on_submission = await create_rule(campaigns, card_application=T.CardApplicationCondition(
        card_product_codes=[product]))
    on_approval = await create_rule(campaigns, card_application=T.CardApplicationCondition(
        card_product_codes=[product], approved_only=True))
    customer, application = unique("cust"), unique("app")
    await feeds.profile(card_application(customer, application, event_pb2.APPLICATION_OUTCOME_SUBMITTED, product))
    assert len(await feeds.firings(on_submission)) == 1 and await feeds.firings(on_approval) == []
    approved = card_application(customer, application, event_pb2.APPLICATION_OUTCOME_APPROVED, product)
    await feeds.profile(approved)
    await feeds.profile(approved)
    assert len(await feeds.firings(on_submission)) == 1, "the same application is the same event"
    assert len(await feeds.firings(on_approval)) == 1
    await feeds.profile(card_application(unique("cust"), unique("app"), event_pb2.APPLICATION_OUTCOME_APPROVED,
                                         "OTHER-CARD"))
    assert len(await feeds.firings(on_submission)) == 1


async def test_payroll_fires_the_month_the_streak_reaches_its_length(campaigns, feeds) -> None:
    rule = await create_rule(campaigns, payroll=T.PayrollCondition(
        consecutive_months=3, min_monthly_amount=money_pb2.Money(currency_code="CNY", units=5_000)))
    customer = unique("cust")
    months = [datetime(2026, m, 25, tzinfo=UTC) for m in (6, 7, 8, 9)]
    await feeds.profile(payroll_credit(customer, months[0], 6_000))
    await feeds.profile(payroll_credit(customer, months[1], 4_000))  # too small: the streak restarts
    await feeds.profile(payroll_credit(customer, months[1] + timedelta(days=2), 7_000))  # a second July credit
    await feeds.profile(payroll_credit(customer, months[2], 6_500))
    assert [f.event_key for f in await feeds.firings(rule)] == ["payroll:2026-08"]
    await feeds.profile(payroll_credit(customer, months[3], 6_500))  # the fourth month is not "becoming"
    assert len(await feeds.firings(rule)) == 1


async def test_a_holding_maturing_within_the_lead_time_fires_once(campaigns, feeds) -> None:
    product = unique("TD").upper()
    rule = await create_rule(campaigns, product_maturity=T.ProductMaturityCondition(
        product_codes=[product], lead_time=days(14), min_amount=money_pb2.Money(currency_code="CNY", units=10_000)))
    customer, today = unique("cust"), datetime.now(UTC).date()
    soon = holding(customer, product, today + timedelta(days=10), 50_000)
    await feeds.profile(soon)
    await feeds.profile(soon)
    await feeds.profile(holding(customer, product, today + timedelta(days=40), 50_000))  # too far off
    await feeds.profile(holding(customer, product, today + timedelta(days=5), 5_000))  # too small
    [firing] = await feeds.firings(rule)
    assert firing.customer_id == customer and firing.event_key.endswith((today + timedelta(days=10)).isoformat())


async def test_an_offer_action_waits_for_a_running_campaign(campaigns, feeds, new_campaign, new_offer) -> None:
    draft = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(
        campaign=new_campaign(type=campaign_pb2.CAMPAIGN_TYPE_TRIGGERED)), metadata=MARKETER)).campaign
    segment, customer = f"segments/{unique('seg')}", unique("cust")
    rule = await create_rule(campaigns, segment_entry=T.SegmentEntryCondition(segment=segment),
                             offer_action=T.OfferAction(campaign=draft.name))
    await feeds.segment(entered(segment, customer))
    [firing] = await feeds.firings(rule)
    assert firing.outcome == FiringOutcome.CAMPAIGN_NOT_RUNNING and await feeds.dispatches(draft.campaign_id,
                                                                                           customer) == []


async def test_a_customer_without_consent_is_suppressed_not_contacted(campaigns, feeds, running_campaign,
                                                                      new_campaign) -> None:
    campaign, _ = await running_campaign(new_campaign(type=campaign_pb2.CAMPAIGN_TYPE_TRIGGERED))
    segment, customer = f"segments/{unique('seg')}", unique("cust")
    rule = await create_rule(campaigns, segment_entry=T.SegmentEntryCondition(segment=segment),
                             offer_action=T.OfferAction(campaign=campaign.name))
    await feeds.segment(entered(segment, customer))
    [firing] = await feeds.firings(rule)
    assert firing.outcome == FiringOutcome.SUPPRESSED and firing.suppression_reason
    assert all(row.state != 1 for row in await feeds.dispatches(campaign.campaign_id, customer))


async def test_a_care_task_action_creates_one_task_for_the_relationship_manager(campaigns, feeds) -> None:
    """Assigned to the customer's manager as the books know them (book/, the one record of it).
    Replays create nothing more; a customer the books do not know yet, or who has no manager,
    gets no task."""
    product = unique("TD").upper()
    rule = await create_rule(campaigns, product_maturity=T.ProductMaturityCondition(product_codes=[product]),
                             care_task_action=T.CareTaskAction(kind=care_pb2.CARE_TASK_KIND_MATURITY_FOLLOW_UP,
                                                               title="Call about the maturing deposit",
                                                               due_after=days(2),
                                                               priority=care_pb2.CARE_TASK_PRIORITY_HIGH))
    today = datetime.now(UTC).date()
    # Only profile's Customer event on the contactability follower so far (book's is behind).
    unbooked, booked, unmanaged = unique("cust"), unique("cust"), unique("cust")
    await feeds.profile(customer_event(unbooked, "rm-contact"))
    await feeds.profile(customer_event(booked, "rm-old"))
    await feeds.in_book(booked, "rm-book")
    await feeds.in_book(unmanaged, "")
    for customer in (unbooked, booked, unmanaged):
        matures = holding(customer, product, today + timedelta(days=5), 50_000)
        await feeds.profile(matures)
        await feeds.profile(matures)  # replayed
    by_customer = {f.customer_id: f.outcome for f in await feeds.firings(rule)}
    assert by_customer == {unbooked: FiringOutcome.NO_RELATIONSHIP_MANAGER, booked: FiringOutcome.CARE_TASK_CREATED,
                           unmanaged: FiringOutcome.NO_RELATIONSHIP_MANAGER}
    [task] = await feeds.care_tasks(booked)
    assert (task.assignee, task.kind, task.title, task.priority, task.state, task.source, task.creator) == (
        "rm-book", care_pb2.CARE_TASK_KIND_MATURITY_FOLLOW_UP, "Call about the maturing deposit",
        care_pb2.CARE_TASK_PRIORITY_HIGH, care_pb2.CARE_TASK_STATE_OPEN, f"triggerRules/{rule.trigger_rule_id}",
        "campaign-triggers")
    assert timedelta(days=1, hours=23) < task.due_at - datetime.now(UTC) <= timedelta(days=2)
    assert await feeds.care_events(booked) == 1, "the task is on campaign's feed once"
    assert await feeds.care_tasks(unbooked) == [] and await feeds.care_tasks(unmanaged) == []
    assert (await get_rule(campaigns, rule)).fire_count == 3


def onboarded(customer: str, day: date) -> change_event_pb2.ChangeEvent:
    return feed_event("crm.profile.v1.Customer", f"customers/{customer}", E.CHANGE_TYPE_CREATED, customer_pb2.Customer(
        name=f"customers/{customer}", customer_id=customer,
        onboarded_on=date_pb2.Date(year=day.year, month=day.month, day=day.day)))


def activity(customer: str, at: datetime, *, login: bool = True) -> change_event_pb2.ChangeEvent:
    message = event_pb2.CustomerEvent(event_id=str(uuid.uuid4()), customer=f"customers/{customer}",
                                      occur_time=timestamp(at), event_type=event_pb2.EVENT_TYPE_LOGIN)
    if not login:  # a salary credit: not the customer's own activity
        message.event_type = event_pb2.EVENT_TYPE_TRANSACTION
        message.transaction.CopyFrom(event_pb2.TransactionDetail(
            amount=money_pb2.Money(currency_code="CNY", units=9000), direction=event_pb2.TRANSACTION_DIRECTION_CREDIT,
            kind=event_pb2.TRANSACTION_KIND_SALARY))
    return feed_event("crm.profile.v1.CustomerEvent", f"customers/{customer}/events/{uuid.uuid4()}",
                      E.CHANGE_TYPE_EVENT, message)


async def test_the_calendar_scan_fires_anniversaries_in_their_lead_time_and_dormancy_once_per_spell(
        campaigns, feeds, campaign_service) -> None:
    _, runtime = campaign_service
    now = datetime.now(UTC)
    today = now.date()
    soon = today + timedelta(days=2)
    anniversary = await create_rule(campaigns, anniversary=T.AnniversaryCondition(lead_time=days(3), years=[1, 5]))
    dormancy = await create_rule(campaigns, dormancy=T.DormancyCondition(inactive_for=days(30)))
    fifth, third, later = unique("cust"), unique("cust"), unique("cust")
    await feeds.profile(onboarded(fifth, soon.replace(year=soon.year - 5)))
    await feeds.profile(onboarded(third, soon.replace(year=soon.year - 3)))  # not a year the rule names
    far = today + timedelta(days=10)
    await feeds.profile(onboarded(later, far.replace(year=far.year - 1)))  # outside the lead time
    idle, busy = unique("cust"), unique("cust")
    await feeds.profile(activity(idle, now - timedelta(days=40)))
    await feeds.profile(activity(idle, now - timedelta(days=1), login=False))  # salary: not activity
    await feeds.profile(activity(busy, now - timedelta(days=50)))
    await feeds.profile(activity(busy, now - timedelta(days=10)))
    await feeds.profile(activity(busy, now - timedelta(days=45)))  # late: never moves activity back

    def scan(at: datetime) -> CalendarScan:
        return CalendarScan(db=runtime.db, firing=feeds.trigger_firing, rules=FiringRepository(),
                            calendar=CalendarRepository(), batch_size=2, clock=lambda: at)

    await scan(now).run_once()
    await scan(now).run_once()  # again: nothing twice
    mine = {fifth, third, later, idle, busy}
    fired = [(f.customer_id, f.event_key) for f in await feeds.firings(anniversary) if f.customer_id in mine]
    assert fired == [(fifth, f"anniversary:{soon.year}")]
    slept = [(f.customer_id, f.event_key) for f in await feeds.firings(dormancy) if f.customer_id in mine]
    idle_since = (now - timedelta(days=40)).date().isoformat()
    assert slept == [(idle, f"dormancy:{idle_since}")]
    # Active again, then idle for another spell: fires again; busy is dormant by then too.
    await feeds.profile(activity(idle, now + timedelta(days=5)))
    await scan(now + timedelta(days=40)).run_once()
    slept = sorted((f.customer_id, f.event_key) for f in await feeds.firings(dormancy) if f.customer_id in mine)
    busy_since = (now - timedelta(days=10)).date().isoformat()
    assert slept == sorted([(idle, f"dormancy:{idle_since}"), (idle, f"dormancy:{(today + timedelta(days=5))}"),
                            (busy, f"dormancy:{busy_since}")])
