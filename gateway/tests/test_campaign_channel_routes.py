"""Routes over what the campaign service serves one customer, end to end through the real profile
and campaign services (campaign following profile's feed, so it knows each customer and their
relationship manager): next best action and the response to it, contact history, the relationship
manager's care tasks, loyalty account, transactions, rewards and redemption. Bad input is a 400
naming the field, strangers and managers outside their book are refused, and a campaign service
that is down is a 503 problem."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.type import decimal_pb2, interval_pb2, money_pb2

from crm.campaign.v1 import campaign_pb2, care_pb2, loyalty_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.common.v1 import audit_pb2, product_risk_pb2
from crmkit.auth import Role
from crmkit.testing import bearer, eventually
from crmkit.values import timestamp

from .conftest import auth, gateway_settings, nowhere, running_gateway

PROBLEM = "application/problem+json"
RM = "rm-007"  # the manager conftest's customers are given
MARKETER_A = bearer(Role.MARKETER, subject="marketer-a")
MARKETER_B = bearer(Role.MARKETER, subject="marketer-b")
CHANGE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)


@pytest.fixture
def gateway_campaign(profile_address, campaign_book_address) -> Any:
    return lambda: running_gateway(gateway_settings(profile_target=profile_address,
                                                    campaign_target=campaign_book_address))


@pytest.fixture
async def customer_id(client, new_customer, campaigns) -> str:
    """A customer of rm-007 created through the gateway, once campaign has followed them in."""
    sent = new_customer()
    assert (await client.post("/v1/customers", json=sent, headers=auth(Role.ADMIN))).status_code == 201
    customer = str(sent["customer_id"])

    async def known() -> bool:
        try:  # the loyalty book is the last of campaign's profile followers to say "in book"
            await campaigns.GetLoyaltyAccount(pb.GetLoyaltyAccountRequest(
                customer=f"customers/{customer}", audit=CHANGE), metadata=bearer(Role.RELATIONSHIP_MANAGER, subject=RM))
            await campaigns.ListContactHistory(pb.ListContactHistoryRequest(
                customer=f"customers/{customer}", audit=CHANGE), metadata=bearer(Role.RELATIONSHIP_MANAGER, subject=RM))
            await campaigns.GetNextBestAction(pb.GetNextBestActionRequest(
                customer=f"customers/{customer}", channel=campaign_pb2.CHANNEL_WEB, audit=CHANGE),
                metadata=bearer(Role.RELATIONSHIP_MANAGER, subject=RM))
        except grpc.aio.AioRpcError as error:
            raise AssertionError(error.code().name) from error
        return True

    await eventually(known, what="campaign to follow the new customer from profile's feed")
    return customer


def names(response: Any) -> set[str]:
    return {p["name"] for p in response.json().get("invalid_params", [])}


def keyed(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key or str(uuid.uuid4())}


async def counter_campaign(campaigns: Any) -> tuple[campaign_pb2.Campaign, campaign_pb2.Offer]:
    """A RUNNING inbound campaign for everyone at the branch counter with one R1 offer (nobody held out)."""
    now = datetime.now(UTC)
    campaign = campaign_pb2.Campaign(
        campaign_id=f"counter-{uuid.uuid4().hex[:10]}", display_name="Counter deposit offer",
        type=campaign_pb2.CAMPAIGN_TYPE_INBOUND,
        active_period=interval_pb2.Interval(start_time=timestamp(now - timedelta(hours=1)),
                                            end_time=timestamp(now + timedelta(days=30))),
        contact_policy=campaign_pb2.ContactPolicy(channels=[campaign_pb2.CHANNEL_BRANCH_COUNTER]),
        control_group=campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="0")))
    created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=campaign),
                                              metadata=MARKETER_A)).campaign
    offer = (await campaigns.CreateOffer(pb.CreateOfferRequest(parent=created.name, offer=campaign_pb2.Offer(
        offer_id=f"td-{uuid.uuid4().hex[:8]}", display_name="3-year time deposit", product_code="TD-3Y-CNY",
        product_risk_level=product_risk_pb2.PRODUCT_RISK_LEVEL_R1, priority=70,
        expected_value=money_pb2.Money(currency_code="CNY", units=1_200))), metadata=MARKETER_A)).offer
    await campaigns.SubmitCampaign(pb.SubmitCampaignRequest(name=created.name), metadata=MARKETER_A)
    await campaigns.ApproveCampaign(pb.ApproveCampaignRequest(name=created.name), metadata=MARKETER_B)
    running = (await campaigns.LaunchCampaign(pb.LaunchCampaignRequest(name=created.name, defer_audience_build=True),
                                              metadata=MARKETER_A)).campaign
    return running, offer


async def test_next_best_action_is_asked_shown_and_answered_then_in_the_contact_history(
        gateway_campaign, campaigns, customer_id) -> None:
    _, offer = await counter_campaign(campaigns)
    counter = auth(Role.CHANNEL_APP, subject="app-counter")
    async with gateway_campaign() as (_, client):
        asked = await client.get(f"/v1/customers/{customer_id}/next-best-action",
                                 params={"channel": "CHANNEL_BRANCH_COUNTER", "max_actions": 10}, headers=counter)
        assert asked.status_code == 200, asked.text
        assert asked.headers["cache-control"] == "no-store"
        body = asked.json()
        assert set(body) == {"actions", "decision_id", "degraded", "degraded_reasons", "excluded"}
        decision_id = body["decision_id"]
        assert uuid.UUID(decision_id)
        mine = [a for a in body["actions"] if a["offer"] == offer.name]
        assert len(mine) == 1 and mine[0]["kind"] == "ACTION_KIND_OFFER" and mine[0]["reasons"]

        sent = {"decision_id": decision_id, "offer": offer.name, "channel": "CHANNEL_BRANCH_COUNTER",
                "type": "RESPONSE_TYPE_SHOWN", "response_time": datetime.now(UTC).isoformat()}
        path = f"/v1/customers/{customer_id}/next-best-action/responses"
        unkeyed = await client.post(path, json=sent, headers=counter)
        assert unkeyed.status_code == 400 and names(unkeyed) == {"Idempotency-Key"}
        key = str(uuid.uuid4())
        shown = await client.post(path, json=sent, headers=keyed(counter, key))
        assert shown.status_code == 201, shown.text
        assert shown.json()["decision_id"] == decision_id and shown.json()["type"] == "RESPONSE_TYPE_SHOWN"
        again = await client.post(path, json=sent, headers=keyed(counter, key))
        assert again.status_code == 201 and again.json()["name"] == shown.json()["name"]  # replayed
        accepted = await client.post(path, json={**sent, "type": "RESPONSE_TYPE_ACCEPTED"}, headers=keyed(counter))
        assert accepted.status_code == 201, accepted.text

        history = await client.get(f"/v1/customers/{customer_id}/contact-history",
                                   headers=auth(Role.RELATIONSHIP_MANAGER, subject=RM))
        assert history.status_code == 200, history.text
        [entry] = history.json()["entries"]
        assert entry["offer"] == offer.name and entry["channel"] == "CHANNEL_BRANCH_COUNTER"
        assert entry["result"] == "CONTACT_RESULT_ACCEPTED"
        assert history.json()["next_page_token"] == ""
        on_sms = await client.get(f"/v1/customers/{customer_id}/contact-history",
                                  params={"channel": "CHANNEL_SMS"}, headers=auth(Role.ADMIN))
        assert on_sms.status_code == 200 and on_sms.json()["entries"] == []
        later = await client.get(f"/v1/customers/{customer_id}/contact-history", headers=auth(Role.ADMIN),
                                 params={"contact_from": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
        assert later.status_code == 200 and later.json()["entries"] == []


async def test_a_response_must_reference_a_decision_that_proposed_the_offer(
        gateway_campaign, campaigns, customer_id) -> None:
    _, offer = await counter_campaign(campaigns)
    counter = auth(Role.CHANNEL_APP, subject="app-counter")
    path = f"/v1/customers/{customer_id}/next-best-action/responses"
    sent = {"decision_id": str(uuid.uuid4()), "offer": offer.name, "channel": "CHANNEL_BRANCH_COUNTER",
            "type": "RESPONSE_TYPE_SHOWN", "response_time": datetime.now(UTC).isoformat()}
    async with gateway_campaign() as (_, client):
        unknown = await client.post(path, json=sent, headers=keyed(counter))
        assert unknown.status_code == 404 and unknown.json()["reason"] == "DECISION_NOT_FOUND"
        web = await client.get(f"/v1/customers/{customer_id}/next-best-action", params={"channel": "CHANNEL_WEB"},
                               headers=counter)
        assert web.status_code == 200, web.text
        assert offer.name not in {a["offer"] for a in web.json()["actions"]}  # a counter-only offer
        not_proposed = await client.post(path, json={**sent, "decision_id": web.json()["decision_id"]},
                                         headers=keyed(counter))
        assert not_proposed.status_code == 400 and names(not_proposed) == {"response.decision_id"}
        bad = await client.post(path, json={**sent, "decision_id": "42", "channel": "CHANNEL_SMS",
                                            "response_time": "2026-01-01T00:00:00"}, headers=keyed(counter))
        assert bad.status_code == 400
        assert names(bad) == {"response.decision_id", "response.channel", "response.response_time"}
        history = await client.get(f"/v1/customers/{customer_id}/contact-history", headers=auth(Role.ADMIN))
        assert history.json()["entries"] == []  # nothing recorded by the refused responses


async def test_next_best_action_input_and_access(gateway_campaign, customer_id) -> None:
    path = f"/v1/customers/{customer_id}/next-best-action"
    async with gateway_campaign() as (_, client):
        no_channel = await client.get(path, headers=auth(Role.CHANNEL_APP))
        assert no_channel.status_code == 400 and names(no_channel) == {"channel"}
        outbound = await client.get(path, params={"channel": "CHANNEL_SMS", "max_actions": 11},
                                    headers=auth(Role.CHANNEL_APP))
        assert outbound.status_code == 400 and names(outbound) == {"channel", "max_actions"}
        stranger = await client.get("/v1/customers/NO-SUCH-CUSTOMER/next-best-action",
                                    params={"channel": "CHANNEL_MOBILE_APP"}, headers=auth(Role.CHANNEL_APP))
        assert stranger.status_code == 404 and stranger.json()["reason"] == "CUSTOMER_NOT_FOUND"
        outside = await client.get(path, params={"channel": "CHANNEL_RM_VISIT"},
                                   headers=auth(Role.RELATIONSHIP_MANAGER, subject="rm-other"))
        assert outside.status_code == 403 and outside.headers["content-type"] == PROBLEM
        own = await client.get(path, params={"channel": "CHANNEL_RM_VISIT"},
                               headers=auth(Role.RELATIONSHIP_MANAGER, subject=RM))
        assert own.status_code == 200, own.text
        assert (await client.get(path, params={"channel": "CHANNEL_WEB"},
                                 headers=auth(Role.MARKETER))).status_code == 403


async def test_contact_history_is_the_managers_own_book_and_checks_its_filters(
        gateway_campaign, customer_id) -> None:
    path = f"/v1/customers/{customer_id}/contact-history"
    async with gateway_campaign() as (_, client):
        outside = await client.get(path, headers=auth(Role.RELATIONSHIP_MANAGER, subject="rm-other"))
        assert outside.status_code == 403 and outside.json()["reason"] == "NOT_IN_BOOK"
        bad = await client.get(path, params={"channel": "CHANNEL_FAX", "campaign_id": "no/slash",
                                             "contact_from": "yesterday", "page_size": 1001}, headers=auth(Role.ADMIN))
        assert bad.status_code == 400
        assert names(bad) == {"channel", "campaign_id", "contact_from", "page_size"}
        backwards = await client.get(path, headers=auth(Role.ADMIN), params={
            "contact_from": "2026-06-02T00:00:00Z", "contact_to": "2026-06-01T00:00:00Z"})
        assert backwards.status_code == 400 and names(backwards) == {"contact_interval"}
        assert (await client.get(path, headers=auth(Role.ANALYST))).status_code == 403


async def test_the_signed_in_manager_lists_and_completes_their_care_tasks(
        gateway_campaign, campaigns, customer_id) -> None:
    due = timestamp(datetime.now(UTC) + timedelta(days=2))
    made = []
    for assignee in (RM, "rm-other"):
        made.append((await campaigns.CreateCareTask(pb.CreateCareTaskRequest(care_task=care_pb2.CareTask(
            customer=f"customers/{customer_id}", kind=care_pb2.CARE_TASK_KIND_BIRTHDAY_GREETING,
            title="Birthday greeting", assignee=assignee, due_time=due), request_id=str(uuid.uuid4())),
            metadata=MARKETER_A)).care_task)
    mine, theirs = made
    manager = auth(Role.RELATIONSHIP_MANAGER, subject=RM)
    async with gateway_campaign() as (_, client):
        listed = await client.get("/v1/care-tasks", params={"customer_id": customer_id, "assignee": "rm-other"},
                                  headers=manager)
        assert listed.status_code == 200, listed.text
        assert [t["name"] for t in listed.json()["care_tasks"]] == [mine.name]  # their own, whatever the filter
        everyone = await client.get("/v1/care-tasks", params={"customer_id": customer_id}, headers=auth(Role.ADMIN))
        assert {t["name"] for t in everyone.json()["care_tasks"]} == {mine.name, theirs.name}

        task_id = mine.name.split("/")[1]
        path = f"/v1/care-tasks/{task_id}/complete"
        no_channel = await client.post(path, json={"outcome": "CARE_TASK_OUTCOME_CONTACTED"}, headers=keyed(manager))
        assert no_channel.status_code == 400 and names(no_channel) == {"contact_channel"}
        bad = await client.post(path, json={"outcome": "CARE_TASK_OUTCOME_MAYBE", "colour": "red"},
                                headers=keyed(manager))
        assert bad.status_code == 400 and names(bad) == {"completion.outcome", "completion.colour"}
        not_mine = await client.post(f"/v1/care-tasks/{theirs.name.split('/')[1]}/complete", headers=keyed(manager),
                                     json={"outcome": "CARE_TASK_OUTCOME_NOT_REACHED"})
        assert not_mine.status_code == 403
        completion = {"outcome": "CARE_TASK_OUTCOME_CONTACTED", "contact_channel": "CHANNEL_RM_VISIT",
                      "outcome_note": "Greeted at the branch.", "etag": mine.etag}
        key = str(uuid.uuid4())
        done = await client.post(path, json=completion, headers=keyed(manager, key))
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "CARE_TASK_STATE_DONE"
        assert done.json()["outcome"] == "CARE_TASK_OUTCOME_CONTACTED"
        again = await client.post(path, json=completion, headers=keyed(manager, key))
        assert again.status_code == 200 and again.json() == done.json()  # replayed
        closed = await client.post(path, json=completion, headers=keyed(manager))
        assert closed.status_code == 409 and closed.json()["reason"] == "CARE_TASK_CLOSED"
        open_now = await client.get("/v1/care-tasks", params={"customer_id": customer_id}, headers=manager)
        assert open_now.json()["care_tasks"] == []
        done_list = await client.get("/v1/care-tasks", params={"customer_id": customer_id,
                                                               "state": "CARE_TASK_STATE_DONE"}, headers=manager)
        assert [t["name"] for t in done_list.json()["care_tasks"]] == [mine.name]
        bad_filter = await client.get("/v1/care-tasks", params={"state": "CARE_TASK_STATE_LOST",
                                                                "due_before": "2026-01-01"}, headers=manager)
        assert bad_filter.status_code == 400 and names(bad_filter) == {"state[0]", "due_before"}
        assert (await client.get("/v1/care-tasks", headers=auth(Role.CHANNEL_APP))).status_code == 403


async def test_loyalty_account_transactions_rewards_and_an_idempotent_redemption(
        gateway_campaign, campaigns, customer_id) -> None:
    reward_id = f"lounge-{uuid.uuid4().hex[:8]}"
    await campaigns.CreateReward(pb.CreateRewardRequest(reward=loyalty_pb2.Reward(
        reward_id=reward_id, display_name="Airport lounge pass", points_cost=400), request_id=str(uuid.uuid4())),
        metadata=MARKETER_A)
    await campaigns.AdjustLoyaltyPoints(pb.AdjustLoyaltyPointsRequest(
        customer=f"customers/{customer_id}", points=1_000, reason="Welcome points", request_id=str(uuid.uuid4()),
        audit=CHANGE), metadata=MARKETER_A)
    app = auth(Role.CHANNEL_APP, subject="app-mobile")
    account_path = f"/v1/customers/{customer_id}/loyalty-account"
    async with gateway_campaign() as (_, client):
        account = await client.get(account_path, headers=app)
        assert account.status_code == 200, account.text
        assert account.json()["balance"] == "1000" and account.json()["level"] == "LOYALTY_LEVEL_BASIC"
        rewards = await client.get("/v1/rewards", params={"available_only": "true", "max_points_cost": 1000},
                                   headers=app)
        assert rewards.status_code == 200, rewards.text
        assert reward_id in {r["reward_id"] for r in rewards.json()["rewards"]}

        redeem = {"reward_id": reward_id, "quantity": 2, "channel": "CHANNEL_MOBILE_APP"}
        path = f"{account_path}/redemptions"
        unkeyed = await client.post(path, json=redeem, headers=app)
        assert unkeyed.status_code == 400 and names(unkeyed) == {"Idempotency-Key"}
        key = str(uuid.uuid4())
        redeemed = await client.post(path, json=redeem, headers=keyed(app, key))
        assert redeemed.status_code == 201, redeemed.text
        assert redeemed.json()["redemption"]["points"] == "800" and redeemed.json()["redemption"]["voucher_code"]
        assert redeemed.json()["loyalty_account"]["balance"] == "200"
        again = await client.post(path, json=redeem, headers=keyed(app, key))
        assert again.status_code == 201
        assert again.json()["redemption"] == redeemed.json()["redemption"]  # replayed, nothing spent again
        reused = await client.post(path, json={**redeem, "quantity": 1}, headers=keyed(app, key))
        assert reused.status_code == 400 and reused.json()["reason"] == "REQUEST_ID_REUSED"
        too_much = await client.post(path, json=redeem, headers=keyed(app))
        assert too_much.status_code == 409 and too_much.json()["reason"] == "INSUFFICIENT_POINTS"
        unknown = await client.post(path, json={**redeem, "reward_id": "no-such-reward"}, headers=keyed(app))
        assert unknown.status_code == 404 and unknown.json()["reason"] == "REWARD_NOT_FOUND"
        bad = await client.post(path, json={"reward_id": "Lounge!", "quantity": 101, "channel": "CHANNEL_FAX"},
                                headers=keyed(app))
        assert bad.status_code == 400
        assert names(bad) == {"redemption.reward_id", "redemption.quantity", "redemption.channel"}

        transactions = await client.get(f"{account_path}/transactions", headers=auth(Role.RELATIONSHIP_MANAGER,
                                                                                      subject=RM))
        assert transactions.status_code == 200, transactions.text
        assert [t["type"] for t in transactions.json()["transactions"]] == [
            "LOYALTY_TRANSACTION_TYPE_REDEEMED", "LOYALTY_TRANSACTION_TYPE_ADJUSTED"]
        redeemed_only = await client.get(f"{account_path}/transactions", headers=app,
                                         params={"type": "LOYALTY_TRANSACTION_TYPE_REDEEMED", "page_size": 1})
        assert [t["points"] for t in redeemed_only.json()["transactions"]] == ["-800"]
        assert (await client.get(account_path, headers=app)).json()["balance"] == "200"

        outside = await client.get(account_path, headers=auth(Role.RELATIONSHIP_MANAGER, subject="rm-other"))
        assert outside.status_code == 403 and outside.json()["reason"] == "CUSTOMER_OUTSIDE_BOOK"
        outside_redeem = await client.post(path, json={**redeem, "quantity": 1}, headers=keyed(
            auth(Role.RELATIONSHIP_MANAGER, subject="rm-other")))
        assert outside_redeem.status_code == 403
        assert (await client.get(account_path, headers=auth(Role.MARKETER))).status_code == 403
        bad_type = await client.get(f"{account_path}/transactions", params={"type": "GIFT"}, headers=app)
        assert bad_type.status_code == 400 and names(bad_type) == {"type"}
    assert (await campaigns.GetLoyaltyAccount(pb.GetLoyaltyAccountRequest(
        customer=f"customers/{customer_id}", audit=CHANGE), metadata=MARKETER_A)).loyalty_account.balance == 200


@pytest.mark.parametrize(("method", "path", "params"), [
    ("GET", "/v1/customers/C0001/next-best-action", {"channel": "CHANNEL_MOBILE_APP"}),
    ("GET", "/v1/customers/C0001/contact-history", {}),
    ("GET", "/v1/care-tasks", {}),
    ("GET", "/v1/customers/C0001/loyalty-account", {}),
    ("GET", "/v1/customers/C0001/loyalty-account/transactions", {}),
    ("GET", "/v1/rewards", {}),
])
async def test_routes_answer_503_while_campaign_is_down(profile_address, method, path, params) -> None:
    settings = gateway_settings(profile_target=profile_address, campaign_target=nowhere(), peer_deadline_seconds=1.0)
    async with running_gateway(settings) as (_, client):
        response = await client.request(method, path, params=params, headers=auth(Role.ADMIN))
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert "invalid_params" not in response.json()


async def test_a_redemption_while_campaign_is_down_is_503_and_may_be_retried_with_its_key(profile_address) -> None:
    settings = gateway_settings(profile_target=profile_address, campaign_target=nowhere(), peer_deadline_seconds=1.0)
    async with running_gateway(settings) as (_, client):
        response = await client.post("/v1/customers/C0001/loyalty-account/redemptions", headers=keyed(
            auth(Role.CHANNEL_APP)), json={"reward_id": "lounge", "channel": "CHANNEL_MOBILE_APP"})
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
