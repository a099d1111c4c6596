"""Issue "Campaign part 2"'s "done when", across real processes (profile and campaign, each on its
own database): a holding matures in profile -> the customer gets exactly one offer, through their
preferred consented channel, and next best action at the counter shows it with its reasons.

The customer consented to SMS and e-mail marketing and prefers SMS; the triggered campaign lists
e-mail first (so a fixed order would pick e-mail) and the branch counter for the follow-up. A
second customer whose deposit matures too, but who gave no consent, gets nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, interval_pb2, money_pb2

from crm.campaign.v1 import audience_pb2, campaign_pb2, campaign_service_pb2_grpc, trigger_pb2
from crm.campaign.v1 import campaign_service_pb2 as cpb
from crm.common.v1 import audit_pb2, product_risk_pb2
from crm.profile.v1 import consent_pb2 as c
from crm.profile.v1 import customer_pb2, holding_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_campaign.app import SPEC as CAMPAIGN
from crm_profile.app import SPEC as PROFILE
from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET, bearer, eventually, free_port, migrated_database

pytestmark = pytest.mark.slow

ADMIN = bearer(Role.ADMIN, subject="steward-1")
CORE_BANKING = bearer(Role.SERVICE, subject="core-banking")
COUNTER = bearer(Role.CHANNEL_APP, subject="branch-counter")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
MARKETER_A = bearer(Role.MARKETER, subject="marketer-a")
MARKETER_B = bearer(Role.MARKETER, subject="marketer-b")
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="e2e test")
SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="counter popup")
SMS, EMAIL, COUNTER_CHANNEL = campaign_pb2.CHANNEL_SMS, campaign_pb2.CHANNEL_EMAIL, campaign_pb2.CHANNEL_BRANCH_COUNTER


async def test_a_maturing_deposit_gets_one_offer_on_the_preferred_channel_and_the_counter_shows_it(
        database_factory: Any, launcher: Any, service_env: Any, tmp_path: Path) -> None:
    urls = {spec.name: await migrated_database(database_factory, spec) for spec in (PROFILE, CAMPAIGN)}
    ports = {name: free_port() for name in urls}
    target = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    outbox = tmp_path / "outbound"
    outbox.mkdir()
    profile_env = {**service_env.profile(urls["profile"], ports["profile"]), "CRM_PROFILE_FEED_POLL_SECONDS": "0.05",
                   "PYTHONUNBUFFERED": "1", "CRM_ACCESS_LOG": "false"}
    campaign_env = {
        "CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1",
        "CRM_ACCESS_LOG": "false", "CRM_CAMPAIGN_DATABASE_URL": urls["campaign"],
        "CRM_CAMPAIGN_PORT": str(ports["campaign"]), "CRM_CAMPAIGN_PROFILE_TARGET": target["profile"],
        "CRM_CAMPAIGN_SEGMENT_TARGET": "", "CRM_CAMPAIGN_FEEDBACK_TARGET": "", "CRM_CAMPAIGN_RISK_TARGET": "",
        "CRM_CAMPAIGN_FEED_MAX_BACKOFF_SECONDS": "0.5",
        "CRM_CAMPAIGN_TEMPLATES": json.dumps({"SMS": ["sms-td"], "EMAIL": ["mail-td"],
                                              "BRANCH_COUNTER": ["counter-td"]}),
        "CRM_CAMPAIGN_CHANNEL_ADAPTERS": json.dumps({"SMS": "file", "EMAIL": "file"}),
        "CRM_CAMPAIGN_DISPATCH_DIRECTORY": str(outbox), "CRM_CAMPAIGN_DISPATCH_POLL_SECONDS": "0.2",
        "CRM_HEALTH_PROBE_SECONDS": "1",
    }
    processes = {name: launcher.start(name, f"crm_{name}", env, "serve")
                 for name, env in (("profile", profile_env), ("campaign", campaign_env))}
    for name, process in processes.items():
        await launcher.wait_serving(target[name], process, timeout=60)
    async with grpc.aio.insecure_channel(target["profile"]) as p, grpc.aio.insecure_channel(target["campaign"]) as k:
        await _journey(profile_service_pb2_grpc.ProfileServiceStub(p), campaign_service_pb2_grpc.CampaignServiceStub(k),
                       outbox)


async def _journey(profile: Any, campaigns: Any, outbox: Path) -> None:
    run = uuid.uuid4().hex[:6]
    today = datetime.now(UTC).date()

    # A running triggered campaign with one offer, and a rule: term deposits maturing within 14 days.
    draft = (await campaigns.CreateCampaign(cpb.CreateCampaignRequest(campaign=campaign_pb2.Campaign(
        campaign_id=f"td-maturity-{run}", display_name="Maturing deposits", type=campaign_pb2.CAMPAIGN_TYPE_TRIGGERED,
        active_period=interval_pb2.Interval(start_time=_at(datetime.now(UTC) - timedelta(hours=1)),
                                            end_time=_at(datetime.now(UTC) + timedelta(days=30))),
        contact_policy=campaign_pb2.ContactPolicy(
            channels=[EMAIL, SMS, COUNTER_CHANNEL],
            channel_strategy=campaign_pb2.CHANNEL_STRATEGY_PREFERENCE_AND_RESPONSE),
        max_contacts=1000)), metadata=MARKETER_A)).campaign
    offer = (await campaigns.CreateOffer(cpb.CreateOfferRequest(parent=draft.name, offer=campaign_pb2.Offer(
        offer_id=f"renew-{run}", display_name="Renew at 2.6 %", product_code="TD-1Y-CNY",
        product_risk_level=product_risk_pb2.PRODUCT_RISK_LEVEL_R1, priority=60,
        expected_value=money_pb2.Money(currency_code="CNY", units=800),
        contents=[campaign_pb2.ChannelContent(channel=SMS, template_id="sms-td", headline="Renew your deposit"),
                  campaign_pb2.ChannelContent(channel=EMAIL, template_id="mail-td", headline="Renew your deposit"),
                  campaign_pb2.ChannelContent(channel=COUNTER_CHANNEL, template_id="counter-td",
                                              headline="Offer the 2.6 % renewal")])),
        metadata=MARKETER_A)).offer
    await campaigns.SubmitCampaign(cpb.SubmitCampaignRequest(name=draft.name), metadata=MARKETER_A)
    await campaigns.ApproveCampaign(cpb.ApproveCampaignRequest(name=draft.name), metadata=MARKETER_B)
    running = (await campaigns.LaunchCampaign(cpb.LaunchCampaignRequest(name=draft.name),
                                              metadata=MARKETER_A)).campaign
    assert running.state == campaign_pb2.CAMPAIGN_STATE_RUNNING
    rule = (await campaigns.CreateTriggerRule(cpb.CreateTriggerRuleRequest(trigger_rule=trigger_pb2.TriggerRule(
        trigger_rule_id=f"td-maturing-{run}", display_name="Deposit maturing: renew",
        product_maturity=trigger_pb2.ProductMaturityCondition(
            product_codes=["TD-1Y-CNY"], lead_time=duration_pb2.Duration(seconds=14 * 86400),
            min_amount=money_pb2.Money(currency_code="CNY", units=10_000)),
        offer_action=trigger_pb2.OfferAction(campaign=running.name, offer=offer.name)),
        request_id=str(uuid.uuid4())), metadata=MARKETER_A)).trigger_rule

    # Customers with a one-year deposit maturing in 60 days (outside the lead time): one opted in to
    # SMS and e-mail and prefers SMS, the other gave no marketing consent. A third (no consent
    # either) comes later and marks how far campaign has read profile's feed.
    customer, silent, marker = (f"M{run.upper()}{n}" for n in range(3))
    for customer_id in (customer, silent, marker):
        await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(customer_id=customer_id, full_name="Wang Fang", branch_id="br-1",
                                           customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
            request_id=str(uuid.uuid4())), metadata=ADMIN)
    await profile.RecordConsent(c.RecordConsentRequest(parent=f"customers/{customer}", audit=AUDIT, consents=[
        _opt_in(c.CONTACT_CHANNEL_SMS), _opt_in(c.CONTACT_CHANNEL_EMAIL)]), metadata=ADMIN)
    await profile.UpdateContactPreferences(c.UpdateContactPreferencesRequest(
        contact_preferences=c.ContactPreferences(name=f"customers/{customer}/contactPreferences",
                                                 preferred_channels=[c.CONTACT_CHANNEL_SMS]),
        update_mask=field_mask_pb2.FieldMask(paths=["preferred_channels"]), audit=AUDIT), metadata=ADMIN)
    holdings = {customer_id: await _deposit(profile, customer_id, matures=today + timedelta(days=60))
                for customer_id in (customer, silent)}

    async def rule_now() -> trigger_pb2.TriggerRule:
        return (await campaigns.GetTriggerRule(cpb.GetTriggerRuleRequest(name=rule.name),
                                               metadata=MARKETER_A)).trigger_rule

    # Core banking moves the term: the deposits now mature today (the source change). Then a
    # second update of the same matured holding (a balance correction) must not send again.
    for held in holdings.values():
        await profile.UpdateHolding(holding_pb2.UpdateHoldingRequest(
            holding=holding_pb2.Holding(name=held.name, maturity_date=_day(today),
                                        status=holding_pb2.HOLDING_STATUS_MATURED),
            update_mask=field_mask_pb2.FieldMask(paths=["maturity_date", "status"]), audit=AUDIT),
            metadata=CORE_BANKING)
    await eventually(rule_now, until=lambda r: r.fire_count == 2, seconds=30, what="both maturities fired")
    await profile.UpdateHolding(holding_pb2.UpdateHoldingRequest(
        holding=holding_pb2.Holding(name=holdings[customer].name,
                                    balance=money_pb2.Money(currency_code="CNY", units=50_125)),
        update_mask=field_mask_pb2.FieldMask(paths=["balance"]), audit=AUDIT), metadata=CORE_BANKING)
    # After it in profile's feed, a deposit created already matured: once that fired, campaign has
    # read the balance correction too.
    await _deposit(profile, marker, matures=today, status=holding_pb2.HOLDING_STATUS_MATURED)
    await eventually(rule_now, until=lambda r: r.fire_count == 3, seconds=30, what="the marker's maturity fired")

    async def dispatches(**filters: Any) -> list[Any]:
        return list((await campaigns.ListDispatches(cpb.ListDispatchesRequest(
            parent=running.name, page_size=100, **filters), metadata=ANALYST)).dispatches)

    [sent] = await eventually(lambda: dispatches(state=audience_pb2.DISPATCH_STATE_SENT), until=lambda ds: len(ds) == 1,
                              seconds=30, what="the customer's offer sent")
    assert (sent.customer, sent.offer, sent.channel) == (f"customers/{customer}", offer.name, SMS)
    suppressed = await dispatches(state=audience_pb2.DISPATCH_STATE_SUPPRESSED)
    assert {(d.customer, d.suppression_reason) for d in suppressed} == {
        (f"customers/{silent}", audience_pb2.SUPPRESSION_REASON_NO_CONSENT),
        (f"customers/{marker}", audience_pb2.SUPPRESSION_REASON_NO_CONSENT)}
    # The balance correction fired nothing more: three dispatch records, one message.
    assert len(await dispatches()) == 3
    lines = await asyncio.to_thread(_written, outbox)
    assert [(line["dispatch_id"], line["customer"], line["channel"]) for line in lines] == [
        (sent.dispatch_id, f"customers/{customer}", "SMS")], "exactly one message, on SMS"

    # The customer walks into the branch: the counter's popup shows the offer, with why.
    answer = await campaigns.GetNextBestAction(cpb.GetNextBestActionRequest(
        customer=f"customers/{customer}", channel=COUNTER_CHANNEL, audit=SERVICE), metadata=COUNTER)
    [action] = answer.actions
    assert (action.offer, action.campaign, action.template_id) == (offer.name, running.name, "counter-td")
    reasons = {reason.code: reason.description for reason in action.reasons}
    assert reasons.keys() == {"CAMPAIGN_PRIORITY", "TRIGGERED_OFFER"}, reasons
    assert reasons["TRIGGERED_OFFER"].startswith(f"Sent by SMS on {today.isoformat()}"), reasons
    # The customer who got nothing is not shown it either.
    other = await campaigns.GetNextBestAction(cpb.GetNextBestActionRequest(
        customer=f"customers/{silent}", channel=COUNTER_CHANNEL, audit=SERVICE), metadata=COUNTER)
    assert list(other.actions) == [] and list(other.excluded) == []


async def _deposit(profile: Any, customer_id: str, *, matures: date,
                   status: int = holding_pb2.HOLDING_STATUS_ACTIVE) -> holding_pb2.Holding:
    """A one-year CNY 50,000 term deposit of `TD-1Y-CNY`, as core banking creates it."""
    return (await profile.CreateHolding(holding_pb2.CreateHoldingRequest(
        parent=f"customers/{customer_id}", audit=AUDIT, request_id=str(uuid.uuid4()), holding=holding_pb2.Holding(
            holding_id=f"TD{customer_id}", product_code="TD-1Y-CNY", product_type=holding_pb2.PRODUCT_TYPE_TERM_DEPOSIT,
            currency="CNY", balance=money_pb2.Money(currency_code="CNY", units=50_000),
            open_date=_day(matures - timedelta(days=365)), maturity_date=_day(matures), status=status,
            source_system="core-banking")), metadata=CORE_BANKING)).holding


def _opt_in(channel: int) -> c.ConsentRecord:
    return c.ConsentRecord(purpose=c.CONSENT_PURPOSE_MARKETING, channel=channel, decision=c.CONSENT_DECISION_OPT_IN,
                           evidence=c.ConsentEvidence(source=c.CONSENT_SOURCE_BRANCH_FORM,
                                                      effective_time=_at(datetime.now(UTC) - timedelta(days=1)),
                                                      text_version="MKT-1", recorded_by="emp-1"))


def _written(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in directory.glob("*.jsonl") for line in path.read_text().splitlines()]


def _at(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _day(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)
