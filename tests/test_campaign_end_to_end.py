"""Issue 11's "done when", across real processes (profile, feedback, segment, campaign, each on its
own database): customers in profile -> a materialised segment -> a campaign draft approved by a
second marketer -> a dry run with the funnel -> a build in which a customer with an open complaint
in feedback is suppressed with that reason -> dispatch through the file adapter -> responses and
conversions -> results with uplift vs control and its 95 % confidence interval."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import decimal_pb2, money_pb2

from crm.campaign.v1 import audience_pb2, campaign_pb2, campaign_service_pb2_grpc, engagement_pb2
from crm.campaign.v1 import campaign_service_pb2 as cpb
from crm.common.v1 import audit_pb2, operation_pb2, product_risk_pb2
from crm.feedback.v1 import channel_pb2, classification_pb2, complaint_pb2, feedback_service_pb2
from crm.feedback.v1 import feedback_service_pb2_grpc as feedback_grpc
from crm.profile.v1 import consent_pb2 as c
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm.segment.v1 import segment_pb2, segment_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2 as spb
from crm_campaign.app import SPEC as CAMPAIGN
from crm_campaign.results.stats import newcombe_interval
from crm_feedback.app import SPEC as FEEDBACK
from crm_profile.app import SPEC as PROFILE
from crm_segment.app import SPEC as SEGMENT
from crmkit.auth import Role
from crmkit.testing import TEST_JWT_SECRET, bearer, error_info, eventually, free_port, migrated_database

pytestmark = pytest.mark.slow

CUSTOMERS = 40
ADMIN = bearer(Role.ADMIN, subject="steward-1")
APP = bearer(Role.CHANNEL_APP, subject="mobile-app")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
MARKETER_A = bearer(Role.MARKETER, subject="marketer-a")
MARKETER_B = bearer(Role.MARKETER, subject="marketer-b")
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="e2e test")
S = audience_pb2
DONE = (operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED,
        operation_pb2.OPERATION_STATE_CANCELLED)


def _base(prefix: str, url: str, port: int) -> dict[str, str]:
    return {"CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1",
            "CRM_ACCESS_LOG": "false", f"CRM_{prefix}_DATABASE_URL": url, f"CRM_{prefix}_PORT": str(port)}


def _opt_in_sms() -> c.ConsentRecord:
    effective = Timestamp()
    effective.FromDatetime(datetime.now(UTC) - timedelta(days=1))
    return c.ConsentRecord(purpose=c.CONSENT_PURPOSE_MARKETING, channel=c.CONTACT_CHANNEL_SMS,
                           decision=c.CONSENT_DECISION_OPT_IN,
                           evidence=c.ConsentEvidence(source=c.CONSENT_SOURCE_BRANCH_FORM, effective_time=effective,
                                                      text_version="MKT-1", recorded_by="emp-1"))


async def test_customers_to_results_across_real_processes(database_factory: Any, launcher: Any, service_env: Any,
                                                          tmp_path: Path) -> None:
    urls = {spec.name: await migrated_database(database_factory, spec) for spec in (PROFILE, FEEDBACK, SEGMENT,
                                                                                     CAMPAIGN)}
    ports = {name: free_port() for name in urls}
    target = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    outbox = tmp_path / "outbound"
    outbox.mkdir()
    profile_env = {**service_env.profile(urls["profile"], ports["profile"]), "CRM_PROFILE_FEED_POLL_SECONDS": "0.05",
                   "PYTHONUNBUFFERED": "1", "CRM_ACCESS_LOG": "false"}
    feedback_env = {**_base("FEEDBACK", urls["feedback"], ports["feedback"]), "CRM_FEEDBACK_FEED_POLL_SECONDS": "0.05"}
    segment_env = {**_base("SEGMENT", urls["segment"], ports["segment"]), "CRM_SEGMENT_FEED_POLL_SECONDS": "0.05",
                   "CRM_SEGMENT_PROFILE_TARGET": target["profile"],
                   "CRM_SEGMENT_PROFILE_FEED_MAX_BACKOFF_SECONDS": "0.5", "CRM_SEGMENT_OPERATION_POLL_SECONDS": "0.1"}
    campaign_env = {
        **_base("CAMPAIGN", urls["campaign"], ports["campaign"]),
        "CRM_CAMPAIGN_PROFILE_TARGET": target["profile"], "CRM_CAMPAIGN_SEGMENT_TARGET": target["segment"],
        "CRM_CAMPAIGN_FEEDBACK_TARGET": target["feedback"], "CRM_CAMPAIGN_FEED_MAX_BACKOFF_SECONDS": "0.5",
        "CRM_CAMPAIGN_TEMPLATES": json.dumps({"SMS": ["sms-e2e"]}),
        "CRM_CAMPAIGN_CHANNEL_ADAPTERS": json.dumps({"SMS": "file"}),
        "CRM_CAMPAIGN_DISPATCH_DIRECTORY": str(outbox), "CRM_CAMPAIGN_DISPATCH_POLL_SECONDS": "0.2",
        "CRM_CAMPAIGN_OPERATION_POLL_SECONDS": "0.1", "CRM_HEALTH_PROBE_SECONDS": "1",
    }
    processes = {name: launcher.start(name, f"crm_{name}", env, "serve") for name, env in (
        ("profile", profile_env), ("feedback", feedback_env), ("segment", segment_env), ("campaign", campaign_env))}
    for name, process in processes.items():
        await launcher.wait_serving(target[name], process, timeout=60)

    channels = {name: grpc.aio.insecure_channel(address) for name, address in target.items()}
    try:
        await _journey(channels, outbox)
    finally:
        for channel in channels.values():
            await channel.close()


async def _journey(channels: dict[str, grpc.aio.Channel], outbox: Path) -> None:
    profile = profile_service_pb2_grpc.ProfileServiceStub(channels["profile"])
    feedback = feedback_grpc.FeedbackServiceStub(channels["feedback"])
    segments = segment_service_pb2_grpc.SegmentServiceStub(channels["segment"])
    campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channels["campaign"])
    clock = time.monotonic()

    def mark(what: str) -> None:
        print(f"{what}: {time.monotonic() - clock:.1f} s")
    run = uuid.uuid4().hex[:6].upper()
    branch = f"E2E-{run}"

    # A real-time segment of this branch's customers (segment publishes the entries of real-time
    # segments on its feed; batch materialisation records them without publishing, see the report).
    segment = (await segments.CreateSegment(spb.CreateSegmentRequest(segment=segment_pb2.Segment(
        segment_id=f"e2e-{run.lower()}", display_name=f"E2E {run}", rule=f'branch_id == "{branch}"',
        evaluation_mode=segment_pb2.SEGMENT_EVALUATION_MODE_REAL_TIME)),
        metadata=ANALYST)).segment
    # Materialised while empty: from then on segment evaluates each changed customer and publishes entries.
    started = await segments.MaterialiseSegment(spb.MaterialiseSegmentRequest(name=segment.name), metadata=ANALYST)

    async def materialised() -> operation_pb2.Operation:
        return (await segments.GetOperation(spb.GetOperationRequest(name=started.operation.name),
                                            metadata=ANALYST)).operation
    done = await eventually(materialised, until=lambda op: op.state in DONE, seconds=60, what="the materialisation")
    assert done.state == operation_pb2.OPERATION_STATE_SUCCEEDED, done.error.message


    # Customers in profile: all opted in to SMS marketing but one; one files a complaint in feedback.
    customers = [f"E{run}{i:03d}" for i in range(CUSTOMERS)]
    no_consent, complainant = customers[0], customers[1]
    for customer_id in customers:
        await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(customer_id=customer_id, full_name="Zhang Wei", branch_id=branch,
                                           customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
            request_id=str(uuid.uuid4())), metadata=ADMIN)
        if customer_id != no_consent:
            await profile.RecordConsent(c.RecordConsentRequest(parent=f"customers/{customer_id}", audit=AUDIT,
                                                               consents=[_opt_in_sms()]), metadata=ADMIN)
    complaint = (await feedback.FileComplaint(feedback_service_pb2.FileComplaintRequest(
        complaint=complaint_pb2.Complaint(
            customer=f"customers/{complainant}", channel=channel_pb2.CHANNEL_MOBILE_APP,
            category=classification_pb2.COMPLAINT_CATEGORY_FEES_AND_CHARGES, subcategory="annual_fee",
            priority=complaint_pb2.COMPLAINT_PRIORITY_HIGH, description="Charged twice.", branch_id=branch),
        request_id=str(uuid.uuid4())), metadata=APP)).complaint

    mark("customers, consents and a complaint")
    # Materialised once segment's read model has them all.
    async def previewed() -> int:
        return (await segments.PreviewSegment(spb.PreviewSegmentRequest(segment=segment.name, sample_size=0),
                                              metadata=MARKETER_A)).count
    await eventually(previewed, until=lambda n: n == CUSTOMERS, seconds=60, what="every customer in segment's model")
    mark("segment materialised")
    # A campaign draft on that segment, with an offer; submitted by one marketer, approved by another.
    draft = (await campaigns.CreateCampaign(cpb.CreateCampaignRequest(campaign=campaign_pb2.Campaign(
        campaign_id=f"e2e-{run.lower()}", display_name="E2E renewal", type=campaign_pb2.CAMPAIGN_TYPE_BATCH,
        segment=segment.name, active_period=_period(),
        contact_policy=campaign_pb2.ContactPolicy(channels=[campaign_pb2.CHANNEL_SMS],
                                                  channel_strategy=campaign_pb2.CHANNEL_STRATEGY_FIXED_ORDER),
        control_group=campaign_pb2.ControlGroup(holdout_percentage=decimal_pb2.Decimal(value="30")),
        max_contacts=1000)), metadata=MARKETER_A)).campaign
    offer = (await campaigns.CreateOffer(cpb.CreateOfferRequest(parent=draft.name, offer=campaign_pb2.Offer(
        offer_id=f"td-{run.lower()}", display_name="3-year deposit", product_code="TD-3Y-CNY",
        product_risk_level=product_risk_pb2.PRODUCT_RISK_LEVEL_R1, priority=50,
        expected_value=money_pb2.Money(currency_code="CNY", units=1200),
        contents=[campaign_pb2.ChannelContent(channel=campaign_pb2.CHANNEL_SMS, template_id="sms-e2e")])),
        metadata=MARKETER_A)).offer
    await campaigns.SubmitCampaign(cpb.SubmitCampaignRequest(name=draft.name), metadata=MARKETER_A)
    with pytest.raises(grpc.aio.AioRpcError) as own:
        await campaigns.ApproveCampaign(cpb.ApproveCampaignRequest(name=draft.name), metadata=MARKETER_A)
    assert own.value.code() == grpc.StatusCode.FAILED_PRECONDITION, "four eyes: no approving your own campaign"
    await campaigns.ApproveCampaign(cpb.ApproveCampaignRequest(name=draft.name), metadata=MARKETER_B)

    # Dry runs of the approved campaign until its read models have caught up with all three feeds: the funnel.
    async def dry_run() -> S.AudienceBuild:
        return await _build(campaigns, draft.name, dry_run=True)
    expected = {S.SUPPRESSION_REASON_NO_CONSENT: 1, S.SUPPRESSION_REASON_OPEN_COMPLAINT: 1}
    dry = await eventually(dry_run, until=lambda b: b.candidate_count == CUSTOMERS and _counts(b) == expected,
                           seconds=30, interval=0.5, what="the funnel over every feed")
    assert dry.eligible_count == CUSTOMERS - 2 and dry.control_count + dry.target_count == dry.eligible_count
    assert await _dispatches(campaigns, draft.name) == [], "a dry run reserves nothing"

    mark("dry run over every feed")
    # The launch starts the first build (and with it the dispatch).
    launched = await campaigns.LaunchCampaign(cpb.LaunchCampaignRequest(name=draft.name), metadata=MARKETER_A)
    running = launched.campaign
    assert running.state == campaign_pb2.CAMPAIGN_STATE_RUNNING
    real = await _finished(campaigns, launched.operation)
    assert (real.eligible_count, _counts(real)) == (CUSTOMERS - 2, expected)
    assert real.control_count >= 1 and real.target_count >= 1
    [suppressed] = [d for d in await _dispatches(campaigns, running.name, state=S.DISPATCH_STATE_SUPPRESSED)
                    if d.customer == f"customers/{complainant}"]
    assert suppressed.suppression_reason == S.SUPPRESSION_REASON_OPEN_COMPLAINT, complaint.name

    # Dispatch through the file adapter: every target's message on disk once, each dispatch SENT.
    sent = await eventually(lambda: _dispatches(campaigns, running.name, state=S.DISPATCH_STATE_SENT),
                            until=lambda ds: len(ds) == real.target_count, seconds=60, what="every target sent")
    lines = await asyncio.to_thread(_written, outbox)
    assert sorted(line["dispatch_id"] for line in lines) == sorted(d.dispatch_id for d in sent)
    targets = {d.customer for d in sent}
    assert f"customers/{complainant}" not in targets and f"customers/{no_consent}" not in targets
    controls = sorted(f"customers/{cid}" for cid in customers[2:] if f"customers/{cid}" not in targets)
    assert len(controls) == real.control_count

    mark("dispatched")
    # Responses and conversions from the channel: two targets responded and bought, one control bought.
    for dispatch in sent[:2]:
        request = cpb.RecordResponseRequest(request_id=str(uuid.uuid4()), response=engagement_pb2.OfferResponse(
            customer=dispatch.customer, offer=offer.name, dispatch=dispatch.name, channel=campaign_pb2.CHANNEL_SMS,
            type=engagement_pb2.RESPONSE_TYPE_CLICKED, response_time=_ago(1)))
        first = await campaigns.RecordResponse(request, metadata=APP)
        again = await campaigns.RecordResponse(request, metadata=APP)
        assert again.response.name == first.response.name, "a repeated request id has one effect"
    for customer in [d.customer for d in sent[:2]] + controls[:1]:
        await campaigns.RecordConversion(cpb.RecordConversionRequest(request_id=str(uuid.uuid4()),
            conversion=engagement_pb2.Conversion(customer=customer, offer=offer.name, conversion_time=_ago(0),
                                                 source_reference=f"ACC-{uuid.uuid4().hex[:8]}")), metadata=APP)

    results = (await campaigns.GetCampaignResults(cpb.GetCampaignResultsRequest(campaign=running.name),
                                                  metadata=ANALYST)).results.overall
    nt, nc = real.target_count, real.control_count
    assert (results.target_count, results.control_count, results.contact_count, results.response_count) == (
        nt, nc, nt, 2)
    assert (results.target_conversion_count, results.control_conversion_count) == (2, 1)
    assert results.uplift == pytest.approx(2 / nt - 1 / nc)
    low, high = newcombe_interval(2, nt, 1, nc)
    assert (results.uplift_interval.low, results.uplift_interval.high, results.uplift_interval.level) == (
        pytest.approx(low), pytest.approx(high), pytest.approx(0.95))
    assert results.uplift_interval.low < results.uplift < results.uplift_interval.high

    # Bad input is refused by the rule's name and changes nothing: editing a running campaign's audience.
    with pytest.raises(grpc.aio.AioRpcError) as edit:
        await campaigns.UpdateCampaign(cpb.UpdateCampaignRequest(
            campaign=campaign_pb2.Campaign(name=running.name, segment="segments/other"),
            update_mask=field_mask_pb2.FieldMask(paths=["segment"])), metadata=MARKETER_A)
    assert edit.value.code() == grpc.StatusCode.FAILED_PRECONDITION, edit.value.details()
    assert error_info(edit.value).reason == "CAMPAIGN_NOT_DRAFT" and "not segment" in edit.value.details()
    unchanged = (await campaigns.GetCampaign(cpb.GetCampaignRequest(name=running.name), metadata=ANALYST)).campaign
    assert unchanged.segment == segment.name


def _written(directory: Path) -> list[dict[str, Any]]:
    """Every message the file adapter wrote, from all channels' JSON-lines files."""
    return [json.loads(line) for path in directory.glob("*.jsonl") for line in path.read_text().splitlines()]


def _period() -> Any:
    from google.type import interval_pb2
    interval = interval_pb2.Interval()
    interval.start_time.CopyFrom(_ago(60))
    interval.end_time.FromDatetime(datetime.now(UTC) + timedelta(days=30))
    return interval


def _ago(minutes: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC) - timedelta(minutes=minutes))
    return stamp


async def _build(campaigns: Any, name: str, *, dry_run: bool) -> S.AudienceBuild:
    started = await campaigns.BuildAudience(cpb.BuildAudienceRequest(name=name, dry_run=dry_run,
                                                                     request_id=str(uuid.uuid4())), metadata=MARKETER_A)
    return await _finished(campaigns, started.operation)


async def _finished(campaigns: Any, operation: operation_pb2.Operation) -> S.AudienceBuild:
    final = operation
    async for update in campaigns.WatchOperation(cpb.WatchOperationRequest(name=operation.name),
                                                 metadata=ANALYST, timeout=60):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    result = S.AudienceBuild()
    assert final.response.Unpack(result)
    return result


def _counts(result: S.AudienceBuild) -> dict[int, int]:
    return {count.reason: count.count for count in result.suppression_counts if count.count}


async def _dispatches(campaigns: Any, name: str, **filters: Any) -> list[Any]:
    return list((await campaigns.ListDispatches(cpb.ListDispatchesRequest(parent=name, page_size=1000, **filters),
                                                metadata=ANALYST)).dispatches)
