"""Customer 360 end to end: the gateway fans out to the real profile, segment, feedback, risk and
campaign services in parallel, and still answers, marked partial, when a non-essential one is down or
slow; `/readyz` reports every peer."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from crm.campaign.v1 import campaign_pb2, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as campaign_pb
from crm.common.v1 import audit_pb2
from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2_grpc
from crm.feedback.v1 import feedback_service_pb2 as feedback_pb
from crmkit.auth import Role
from crmkit.testing import bearer, eventually
from crmkit.values import timestamp

from .conftest import auth, gateway_settings, nowhere, running_gateway
from .test_campaign_channel_routes import counter_campaign

PARTS = {"holdings", "consents", "contact_preferences", "segment_membership_changes", "open_complaints",
         "classification", "churn_score", "contact_history"}
# Service -> the parts it answers.
PARTS_OF = {"feedback": ["open_complaints"], "segment": ["segment_membership_changes", "classification"],
            "risk": ["churn_score"], "campaign": ["contact_history"]}


@pytest.fixture(scope="module")
def black_hole() -> Iterator[str]:
    """A peer that accepts connections and never answers: a slow service."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.fixture
def gateway_360(profile_address, segment_address, feedback_address, risk_address, campaign_address) -> Any:
    """`async with gateway_360(feedback_target=...)`: a gateway on every running service, with
    the peers the test names replaced."""

    def running(**overrides: Any) -> Any:
        return running_gateway(gateway_settings(**{
            "profile_target": profile_address, "segment_target": segment_address,
            "feedback_target": feedback_address, "risk_target": risk_address, "campaign_target": campaign_address,
            # Generous: these tests are about what each part holds, and a loaded CI machine once
            # took over 0.5 s for one; the deadline itself is tested with a black hole below.
            "customer_360_part_deadline_seconds": 5.0, **overrides}))

    return running


@pytest.fixture(scope="module")
async def feedback_stub(feedback_address) -> AsyncIterator[feedback_service_pb2_grpc.FeedbackServiceStub]:
    async with grpc.aio.insecure_channel(feedback_address) as channel:
        yield feedback_service_pb2_grpc.FeedbackServiceStub(channel)


@pytest.fixture
async def customer(client, new_customer, feedback_stub) -> dict[str, Any]:
    """A customer created through the gateway, with one complaint filed at the feedback service."""
    sent = new_customer()
    assert (await client.post("/v1/customers", json=sent, headers=auth(Role.ADMIN))).status_code == 201
    await feedback_stub.FileComplaint(feedback_pb.FileComplaintRequest(complaint=complaint_pb2.Complaint(
        customer=f"customers/{sent['customer_id']}", channel=channel_pb2.CHANNEL_MOBILE_APP,
        category=classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES, subcategory="annual_fee",
        priority=complaint_pb2.COMPLAINT_PRIORITY_HIGH, description="The annual fee was charged twice.",
        branch_id="BJ-001"), request_id=str(uuid.uuid4())), metadata=bearer(Role.ADMIN))
    return sent


async def test_every_part_comes_from_its_service(gateway_360, customer) -> None:
    async with gateway_360() as (_, client):
        response = await client.get(f"/v1/customers/{customer['customer_id']}/360", headers=auth(Role.ADMIN))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["partial"] is False and body["missing"] == [] and body["withheld"] == [], body["missing"]
    assert body["customer"]["customer_id"] == customer["customer_id"]
    assert set(body) >= PARTS
    [complaint] = body["open_complaints"]
    assert complaint["customer"] == f"customers/{customer['customer_id']}"
    assert complaint["status"] == "COMPLAINT_STATUS_OPEN"
    assert body["holdings"] == [] and body["segment_membership_changes"] == []
    assert isinstance(body["contact_preferences"], dict)
    # Risk and campaign answered: no churn score written back yet, and this campaign service (not
    # following profile) has never heard of the customer: null parts, neither missing nor withheld.
    assert body["churn_score"] is None
    assert body["contact_history"] is None


async def test_the_classification_comes_from_segment_once_it_has_followed_the_customer(
    gateway_360, customer,
) -> None:
    async with gateway_360() as (_, client):
        async def classification() -> Any:
            response = await client.get(f"/v1/customers/{customer['customer_id']}/360", headers=auth(Role.ADMIN))
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["missing"] == [], body["missing"]
            return body["classification"]

        found = await eventually(classification, what="segment to classify the new customer")
    assert found["customer"] == f"customers/{customer['customer_id']}"
    assert found["value_tier"].startswith("VALUE_TIER_") and found["value_tier"] != "VALUE_TIER_UNSPECIFIED"
    assert found["lifecycle_stage"].startswith("LIFECYCLE_STAGE_")
    assert found["activity_layer"].startswith("ACTIVITY_LAYER_")
    assert "service_standard" in found


@pytest.mark.parametrize("peer", sorted(PARTS_OF))
async def test_a_service_that_is_down_leaves_its_part_out_and_the_answer_partial(
    gateway_360, customer, peer,
) -> None:
    async with gateway_360(**{f"{peer}_target": nowhere()}) as (_, client):
        response = await client.get(f"/v1/customers/{customer['customer_id']}/360", headers=auth(Role.ADMIN))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["partial"] is True
    assert body["missing"] == [{"part": part, "service": peer, "reason": "UNAVAILABLE"} for part in PARTS_OF[peer]]
    assert not set(PARTS_OF[peer]) & set(body)
    assert body["customer"]["customer_id"] == customer["customer_id"]
    assert PARTS - set(PARTS_OF[peer]) <= set(body)


async def test_a_slow_service_is_cut_at_its_deadline(gateway_360, customer, black_hole) -> None:
    async with gateway_360(feedback_target=black_hole, segment_target=black_hole, risk_target=black_hole,
                           campaign_target=black_hole, customer_360_part_deadline_seconds=1.0) as (_, client):
        started = time.perf_counter()
        response = await client.get(f"/v1/customers/{customer['customer_id']}/360", headers=auth(Role.ADMIN))
        elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["partial"] is True
    assert sorted(body["missing"], key=lambda m: m["part"]) == sorted(
        ({"part": part, "service": peer, "reason": "DEADLINE_EXCEEDED"}
         for peer, parts in PARTS_OF.items() for part in parts), key=lambda m: m["part"])
    # All cut at their own 1 s deadline at the same time: one after the other would take 5 s.
    assert 1.0 <= elapsed < 1.9


async def test_a_part_the_callers_role_may_not_read_is_withheld_not_missing(gateway_360, customer) -> None:
    async with gateway_360() as (_, client):
        response = await client.get(f"/v1/customers/{customer['customer_id']}/360",
                                    headers=auth(Role.CHANNEL_APP))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["partial"] is False
    assert {"part": "open_complaints", "service": "feedback", "reason": "PERMISSION_DENIED"} in body["withheld"]
    assert "open_complaints" not in body


async def test_the_contact_history_is_read_by_channel_apps_and_the_customers_own_manager(
    gateway_360, customer, campaigns, campaign_book_address,
) -> None:
    """Campaign's ListContactHistory, open to the 360's main callers: the offer shown at the counter
    is the history's first entry for a channel app and for the customer's relationship manager."""
    name = f"customers/{customer['customer_id']}"
    counter = bearer(Role.CHANNEL_APP, subject="app-counter")
    purpose = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
    _, offer = await counter_campaign(campaigns)

    async def decided() -> str:  # once campaign has followed the new customer from profile's feed
        try:
            asked = await campaigns.GetNextBestAction(campaign_pb.GetNextBestActionRequest(
                customer=name, channel=campaign_pb2.CHANNEL_BRANCH_COUNTER, max_actions=10, audit=purpose),
                metadata=counter)
        except grpc.aio.AioRpcError as error:
            raise AssertionError(error.code().name) from error
        assert offer.name in {action.offer for action in asked.actions}
        return str(asked.decision_id)

    decision_id = await eventually(decided, what="campaign to follow the new customer")
    await campaigns.RecordResponse(campaign_pb.RecordResponseRequest(response=engagement_pb2.OfferResponse(
        customer=name, offer=offer.name, decision_id=decision_id, channel=campaign_pb2.CHANNEL_BRANCH_COUNTER,
        type=engagement_pb2.RESPONSE_TYPE_SHOWN, response_time=timestamp(datetime.now(UTC))),
        request_id=str(uuid.uuid4())), metadata=counter)
    async with gateway_360(campaign_target=campaign_book_address) as (_, client):
        for caller in (auth(Role.CHANNEL_APP), auth(Role.RELATIONSHIP_MANAGER, subject="rm-007")):
            response = await client.get(f"/v1/customers/{customer['customer_id']}/360", headers=caller)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["partial"] is False, body["missing"]
            assert not [w for w in body["withheld"] if w["part"] == "contact_history"]
            [entry] = body["contact_history"]
            assert entry["offer"] == offer.name and entry["channel"] == "CHANNEL_BRANCH_COUNTER"
            assert entry["offer_display_name"] == "3-year time deposit"


async def test_the_customer_is_essential_its_errors_are_the_routes(gateway_360, customer) -> None:
    async with gateway_360() as (_, client):
        unknown = await client.get("/v1/customers/NO-SUCH-CUSTOMER/360", headers=auth(Role.ADMIN))
        assert unknown.status_code == 404
        assert unknown.json()["reason"] == "CUSTOMER_NOT_FOUND"
        outside = await client.get(f"/v1/customers/{customer['customer_id']}/360",
                                   headers=auth(Role.RELATIONSHIP_MANAGER, subject="rm-other"))
        assert outside.status_code == 403
    async with gateway_360(profile_target=nowhere()) as (_, client):
        down = await client.get(f"/v1/customers/{customer['customer_id']}/360", headers=auth(Role.ADMIN))
        assert down.status_code == 503


async def test_readiness_reports_every_peer_and_follows_the_essential_one(gateway_360) -> None:
    async with gateway_360() as (_, client):
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "essential": ["profile"], "checks": {
        "profile": "SERVING", "segment": "SERVING", "feedback": "SERVING",
        "campaign": "SERVING", "risk": "SERVING"}}
    async with gateway_360(profile_target=nowhere()) as (_, client):
        down = await client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["status"] == "not_ready"
    assert down.json()["checks"]["profile"] == "UNAVAILABLE"
    assert down.json()["checks"]["feedback"] == "SERVING"
