"""Routes over the RPCs the services serve today, end to end through real services: consents and
contact preferences (profile), complaints (feedback), segments (segment), the model registry
(risk, here down). Pagination, Idempotency-Key and errors behave as on every route."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from crmkit.auth import Role

from .conftest import auth, gateway_settings, running_gateway

PROBLEM = "application/problem+json"


@pytest.fixture
def gateway_all(profile_address, segment_address, feedback_address) -> Any:
    return lambda: running_gateway(gateway_settings(
        profile_target=profile_address, segment_target=segment_address, feedback_target=feedback_address))


@pytest.fixture
async def customer_id(client, new_customer) -> str:
    sent = new_customer()
    assert (await client.post("/v1/customers", json=sent, headers=auth(Role.ADMIN))).status_code == 201
    return str(sent["customer_id"])


def consent(purpose: str, channel: str, decision: str = "CONSENT_DECISION_OPT_IN") -> dict[str, Any]:
    return {"purpose": purpose, "channel": channel, "decision": decision,
            "evidence": {"source": "CONSENT_SOURCE_BRANCH_FORM", "source_reference": "FORM-1",
                         "effective_time": "2026-06-01T12:00:00Z", "text_version": "MKT-CN-2025.03",
                         "recorded_by": "emp-1"}}


def names(response) -> set[str]:  # type: ignore[no-untyped-def]
    return {p["name"] for p in response.json().get("invalid_params", [])}


async def test_consents_are_recorded_then_listed_a_page_at_a_time(client, customer_id) -> None:
    counter = {**auth(Role.CHANNEL_APP, subject="app-branch"), "Idempotency-Key": str(uuid.uuid4())}
    body = {"consents": [consent("CONSENT_PURPOSE_MARKETING", "CONTACT_CHANNEL_SMS"),
                         consent("CONSENT_PURPOSE_SURVEYS", "CONTACT_CHANNEL_EMAIL")]}
    recorded = await client.post(f"/v1/customers/{customer_id}/consents", json=body, headers=counter)
    assert recorded.status_code == 201, recorded.text
    assert len(recorded.json()["consents"]) == 2
    again = await client.post(f"/v1/customers/{customer_id}/consents", json=body, headers=counter)
    assert again.status_code == 201 and again.json() == recorded.json()  # replayed, not recorded twice

    first = await client.get(f"/v1/customers/{customer_id}/consents?page_size=1", headers=auth(Role.ADMIN))
    assert first.status_code == 200, first.text
    assert len(first.json()["states"]) == 1 and first.json()["next_page_token"]
    second = await client.get(f"/v1/customers/{customer_id}/consents",
                              params={"page_size": 1, "page_token": first.json()["next_page_token"]},
                              headers=auth(Role.ADMIN))
    assert len(second.json()["states"]) == 1
    assert second.json()["states"] != first.json()["states"]


async def test_a_bad_consent_is_a_400_naming_the_field_and_records_nothing(client, customer_id) -> None:
    bad = await client.post(f"/v1/customers/{customer_id}/consents", headers=auth(Role.ADMIN),
                            json={"consents": [consent("CONSENT_PURPOSE_NOPE", "CONTACT_CHANNEL_SMS")]})
    assert bad.status_code == 400
    assert names(bad) == {"body.consents[0].purpose"}
    listed = await client.get(f"/v1/customers/{customer_id}/consents", headers=auth(Role.ADMIN))
    assert listed.json()["states"] == []


@pytest.mark.parametrize("query", ["page_size=1001", "page_size=-1"])
async def test_page_size_out_of_range_is_a_400_naming_it(client, customer_id, query) -> None:
    response = await client.get(f"/v1/customers/{customer_id}/consents?{query}", headers=auth(Role.ADMIN))
    assert response.status_code == 400
    assert names(response) == {"page_size"}


async def test_contact_preferences_change_only_the_fields_given(client, customer_id) -> None:
    rm = auth(Role.RELATIONSHIP_MANAGER, subject="rm-007")
    changed = await client.patch(f"/v1/customers/{customer_id}/contact-preferences", headers=rm,
                                 json={"preferred_channels": ["CONTACT_CHANNEL_EMAIL"], "language": "zh-CN"})
    assert changed.status_code == 200, changed.text
    read = await client.get(f"/v1/customers/{customer_id}/contact-preferences", headers=rm)
    assert read.status_code == 200
    assert read.json()["preferred_channels"] == ["CONTACT_CHANNEL_EMAIL"]
    assert read.json()["language"] == "zh-CN"


async def test_complaints_are_filed_once_tracked_and_listed(gateway_all, customer_id) -> None:
    filing = {"customer": f"customers/{customer_id}", "channel": "CHANNEL_MOBILE_APP",
              "category": "COMPLAINT_CATEGORY_FEES_AND_CHARGES", "subcategory": "annual_fee",
              "priority": "COMPLAINT_PRIORITY_HIGH", "description": "The annual fee was charged twice.",
              "branch_id": "BJ-001"}
    app = auth(Role.CHANNEL_APP, subject="app-mobile")
    async with gateway_all() as (_, client):
        unkeyed = await client.post("/v1/complaints", json=filing, headers=app)
        assert unkeyed.status_code == 400
        assert names(unkeyed) == {"Idempotency-Key"}

        keyed = {**app, "Idempotency-Key": str(uuid.uuid4())}
        filed = await client.post("/v1/complaints", json=filing, headers=keyed)
        assert filed.status_code == 201, filed.text
        again = await client.post("/v1/complaints", json=filing, headers=keyed)
        assert again.status_code == 201 and again.json()["complaint_id"] == filed.json()["complaint_id"]

        tracked = await client.get(filed.headers["location"], headers=app)
        assert tracked.status_code == 200
        assert tracked.json()["status"] == "COMPLAINT_STATUS_OPEN"

        queue = await client.get("/v1/complaints", params={"customer_id": customer_id,
                                                           "status": "COMPLAINT_STATUS_OPEN"},
                                 headers=auth(Role.ADMIN))
        assert queue.status_code == 200, queue.text
        assert [c["complaint_id"] for c in queue.json()["complaints"]] == [filed.json()["complaint_id"]]
        assert queue.json()["next_page_token"] == ""
        bad = await client.get("/v1/complaints?status=COMPLAINT_STATUS_LOST", headers=auth(Role.ADMIN))
        assert bad.status_code == 400 and names(bad) == {"status[0]"}
        assert (await client.get("/v1/complaints", headers=app)).status_code == 403  # the queue is staff's


async def test_segment_preview_list_and_explain(gateway_all) -> None:
    analyst = auth(Role.ANALYST)
    async with gateway_all() as (_, client):
        listed = await client.get("/v1/segments", headers=analyst)
        assert listed.status_code == 200, listed.text
        assert set(listed.json()) == {"segments", "next_page_token"}
        preview = await client.post("/v1/segments/preview", json={"rule": "aum > 1.0", "sample_size": 5},
                                    headers=analyst)
        assert preview.status_code == 200, preview.text
        assert set(preview.json()) <= {"count", "total_customers", "samples", "warnings", "features_as_of"}
        bad = await client.post("/v1/segments/preview", json={"rule": "amu > 1.0"}, headers=analyst)
        assert bad.status_code == 400 and "rule" in names(bad)
        unknown = await client.get("/v1/segments/no-such-segment/members/C0001/explanation", headers=analyst)
        assert unknown.status_code == 404
        assert (await client.post("/v1/segments/preview", json={"rule": "aum > 1.0"},
                                  headers=auth(Role.CHANNEL_APP))).status_code == 403


async def test_model_registry_answers_503_while_risk_is_down(gateway_all) -> None:
    async with gateway_all() as (_, client):
        down = await client.get("/v1/churn-models?status=CHURN_MODEL_STATUS_ACTIVE", headers=auth(Role.RISK_OFFICER))
        assert down.status_code == 503
        assert down.headers["content-type"] == PROBLEM
        assert (await client.get("/v1/churn-models", headers=auth(Role.CHANNEL_APP))).status_code == 403
        bad = await client.get("/v1/churn-models?status=ACTIVE", headers=auth(Role.RISK_OFFICER))
        assert bad.status_code == 400 and names(bad) == {"status"}


async def test_model_registry_lists_the_versions_a_page_at_a_time(profile_address, risk_address) -> None:
    settings = gateway_settings(profile_target=profile_address, risk_target=risk_address)
    async with running_gateway(settings) as (_, client):
        listed = await client.get("/v1/churn-models", params={"status": "CHURN_MODEL_STATUS_ACTIVE", "page_size": 10},
                                  headers=auth(Role.RISK_OFFICER))
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"churn_models": [], "next_page_token": ""}
        assert (await client.get("/v1/churn-models", headers=auth(Role.AUDITOR))).status_code == 200
        bad_token = await client.get("/v1/churn-models?page_token=not-a-token", headers=auth(Role.ANALYST))
        assert bad_token.status_code == 400 and names(bad_token) == {"page_token"}


async def test_campaign_routes_reach_the_campaign_service(profile_address, campaign_address) -> None:
    settings = gateway_settings(profile_target=profile_address, campaign_target=campaign_address)
    marketer = auth(Role.MARKETER, subject="mkt-2")
    async with running_gateway(settings) as (_, client):
        listed = await client.get("/v1/campaigns", params={"state": "CAMPAIGN_STATE_DRAFT"}, headers=marketer)
        assert listed.status_code == 200, listed.text
        assert set(listed.json()) == {"campaigns", "next_page_token"}
        approve = await client.post("/v1/campaigns/no-such-campaign/approve", json={"etag": "1"},
                                    headers={**marketer, "Idempotency-Key": str(uuid.uuid4())})
        assert approve.status_code == 404, approve.text
        no_etag = await client.post("/v1/campaigns/no-such-campaign/approve", json={}, headers=marketer)
        assert no_etag.status_code == 400 and names(no_etag) == {"approval.etag"}
        results = await client.get("/v1/campaigns/no-such-campaign/results", headers=auth(Role.ANALYST))
        assert results.status_code == 404
        assert (await client.get("/v1/campaigns", headers=auth(Role.CHANNEL_APP))).status_code == 403
        unknown_state = await client.get("/v1/campaigns?state=CAMPAIGN_STATE_LOST", headers=marketer)
        assert unknown_state.status_code == 400 and names(unknown_state) == {"state[0]"}
