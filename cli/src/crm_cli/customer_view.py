"""A customer's 360 view: profile, segment, feedback and campaign asked in parallel, each with its
own deadline, so one slow or stopped service leaves its part "unavailable" instead of failing the view.

Every source is one `Part`: what it returned (proto-JSON dicts, for `--output json`) and the rows
a person reads (field, value). Only profile's NOT_FOUND fails the whole view: there is no customer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.message import Message

from crm.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from crm.common.v1 import audit_pb2
from crm.feedback.v1 import complaint_pb2, feedback_service_pb2, feedback_service_pb2_grpc
from crm.profile.v1 import consent_pb2, holding_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
from crm_cli import output

SOURCES = ("profile", "segment", "feedback", "campaign")
OPEN_COMPLAINT_STATUSES = (complaint_pb2.COMPLAINT_STATUS_OPEN, complaint_pb2.COMPLAINT_STATUS_ACKNOWLEDGED,
                           complaint_pb2.COMPLAINT_STATUS_IN_PROGRESS, complaint_pb2.COMPLAINT_STATUS_REOPENED)
# Codes that mean "the service is not there to answer", as opposed to an answer.
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
MAX_ROWS = 20  # holdings, complaints, dispatches: the first page a person reads
Metadata = tuple[tuple[str, str], ...]


class CustomerNotFound(Exception):
    pass


@dataclass
class Part:
    source: str
    status: str = "ok"  # ok | unavailable | error
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"status": self.status, **self.data}
        if self.detail:
            shown["detail"] = self.detail
        return shown


def _dict(message: Message) -> dict[str, Any]:
    return output.message_to_dict(message)


def _enum(value: str | None, prefix: str) -> str:
    return value.removeprefix(prefix).lower().replace("_", " ") if value else "-"


def money(value: Mapping[str, Any] | None) -> str:
    """`google.type.Money` as JSON, written `12,345.67 CNY`."""
    if not value:
        return "-"
    amount = int(value.get("units", 0)) + int(value.get("nanos", 0)) / 1e9
    return f"{amount:,.2f} {value.get('currency_code', '')}".strip()


def _date(value: Mapping[str, Any] | None) -> str:
    if not value:
        return ""
    return f"{value['year']:04d}-{value.get('month', 0):02d}-{value.get('day', 0):02d}"


def _audit() -> audit_pb2.AuditContext:
    return audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE, justification="crm customers show")


async def _profile(channel: grpc.aio.Channel, customer: str, metadata: Metadata, deadline: float) -> Part:
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    got, holdings, consents = await asyncio.gather(
        stub.GetCustomer(profile_service_pb2.GetCustomerRequest(name=customer, audit=_audit()),
                         metadata=metadata, timeout=deadline),
        stub.ListHoldings(holding_pb2.ListHoldingsRequest(parent=customer, page_size=MAX_ROWS, audit=_audit()),
                          metadata=metadata, timeout=deadline),
        stub.ListConsents(consent_pb2.ListConsentsRequest(parent=customer, page_size=100, audit=_audit()),
                          metadata=metadata, timeout=deadline),
    )
    part = Part("profile", data={"customer": _dict(got.customer),
                                 "holdings": [_dict(h) for h in holdings.holdings],
                                 "consents": [_dict(c) for c in consents.states]})
    person = part.data["customer"]
    for key in ("full_name", "customer_type", "state", "kyc_status", "risk_tolerance", "branch_id",
                "relationship_manager_id", "onboarded_on", "mobile_phone", "email"):
        if key in person:
            value = person[key]
            part.rows.append((key.replace("_", " "), _date(value) if isinstance(value, Mapping) else str(value)))
    for holding in part.data["holdings"]:
        maturity = _date(holding.get("maturity_date"))
        part.rows.append((f"holding {holding.get('holding_id', '')}",
                          f"{_enum(holding.get('product_type'), 'PRODUCT_TYPE_')} {holding.get('product_code', '')}, "
                          f"{money(holding.get('balance'))}, {_enum(holding.get('status'), 'HOLDING_STATUS_')}"
                          + (f", matures {maturity}" if maturity else "")))
    if not part.data["holdings"]:
        part.rows.append(("holdings", "none"))
    for consent in part.data["consents"]:
        part.rows.append((f"consent {_enum(consent.get('purpose'), 'CONSENT_PURPOSE_')}"
                          f" / {_enum(consent.get('channel'), 'CONTACT_CHANNEL_')}",
                          _enum(consent.get("status"), "CONSENT_STATUS_")))
    if not part.data["consents"]:
        part.rows.append(("consents", "none recorded"))
    return part


async def _segment(channel: grpc.aio.Channel, customer: str, metadata: Metadata, deadline: float) -> Part:
    stub = segment_service_pb2_grpc.SegmentServiceStub(channel)
    reply = await stub.GetCustomerClassification(
        segment_service_pb2.GetCustomerClassificationRequest(customer=customer, audit=_audit()),
        metadata=metadata, timeout=deadline)
    data = _dict(reply.classification)
    part = Part("segment", data={"classification": data})
    for key, prefix in (("value_tier", "VALUE_TIER_"), ("activity_layer", "ACTIVITY_LAYER_"),
                        ("lifecycle_stage", "LIFECYCLE_STAGE_")):
        if key in data:
            part.rows.append((key.replace("_", " "), _enum(data[key], prefix)))
    if data.get("service_standard", {}).get("care_programme"):
        part.rows.append(("care programme", data["service_standard"]["care_programme"]))
    for key in ("qualifying_aum", "expected_lifetime_value"):
        if key in data:
            part.rows.append((key.replace("_", " "), money(data[key])))
    for path, text in output.flatten(data.get("rfm", {}), "rfm."):
        if not path.startswith("rfm.window"):
            part.rows.append((path, text))
    if not part.rows:
        part.rows.append(("classification", "not classified yet"))
    return part


async def _feedback(channel: grpc.aio.Channel, customer: str, metadata: Metadata, deadline: float) -> Part:
    stub = feedback_service_pb2_grpc.FeedbackServiceStub(channel)
    reply = await stub.ListComplaints(
        feedback_service_pb2.ListComplaintsRequest(customer=customer, statuses=OPEN_COMPLAINT_STATUSES,
                                                   page_size=MAX_ROWS, order_by="sla.resolve_by",
                                                   audit=audit_pb2.AuditContext(
                                                       purpose=audit_pb2.ACCESS_PURPOSE_COMPLAINT,
                                                       justification="crm customers show")),
        metadata=metadata, timeout=deadline)
    complaints = [_dict(c) for c in reply.complaints]
    part = Part("feedback", data={"open_complaints": complaints})
    for complaint in complaints:
        resolve_by = complaint.get("sla", {}).get("resolve_by", "")
        part.rows.append((f"complaint {complaint.get('complaint_id', '')}",
                          f"{_enum(complaint.get('status'), 'COMPLAINT_STATUS_')}, "
                          f"{_enum(complaint.get('priority'), 'COMPLAINT_PRIORITY_')} priority, "
                          f"{_enum(complaint.get('category'), 'COMPLAINT_CATEGORY_')}"
                          + (f", resolve by {resolve_by}" if resolve_by else "")))
    if not complaints:
        part.rows.append(("open complaints", "none"))
    return part


async def _campaign(channel: grpc.aio.Channel, customer: str, metadata: Metadata, deadline: float) -> Part:
    stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
    reply = await stub.ListDispatches(
        campaign_service_pb2.ListDispatchesRequest(parent="campaigns/-", customer=customer, page_size=MAX_ROWS),
        metadata=metadata, timeout=deadline)
    dispatches = [_dict(d) for d in reply.dispatches]
    part = Part("campaign", data={"dispatches": dispatches})
    for dispatch in dispatches:
        part.rows.append((f"dispatch {dispatch.get('dispatch_id', '')}",
                          f"{dispatch.get('offer', '')} by {_enum(dispatch.get('channel'), 'CHANNEL_')}, "
                          f"{_enum(dispatch.get('state'), 'DISPATCH_STATE_')}"
                          + (f", {dispatch['create_time']}" if dispatch.get("create_time") else "")))
    if not dispatches:
        part.rows.append(("dispatches", "none"))
    return part


FETCHERS: dict[str, Callable[[grpc.aio.Channel, str, Metadata, float], Awaitable[Part]]] = {
    "profile": _profile, "segment": _segment, "feedback": _feedback, "campaign": _campaign,
}


async def _ask(source: str, target: str, customer: str, metadata: Metadata, deadline: float) -> Part:
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            # The per-call deadline bounds each RPC; the outer one bounds the whole source
            # (a channel that never connects), with a little slack for the RPCs' own.
            return await asyncio.wait_for(FETCHERS[source](channel, customer, metadata, deadline), deadline + 1)
    except TimeoutError:
        return Part(source, status="unavailable", detail=f"no answer within {deadline:g}s from {target}")
    except grpc.aio.AioRpcError as exc:
        if source == "profile" and exc.code() is grpc.StatusCode.NOT_FOUND:
            raise CustomerNotFound(output.describe_rpc_error(exc)) from exc
        if exc.code() is grpc.StatusCode.NOT_FOUND:  # an answer: this service knows nothing of them
            return Part(source, detail=exc.details() or "", rows=[("-", "nothing recorded")])
        status = "unavailable" if exc.code() in UNREACHABLE else "error"
        detail = f"{target}: {output.describe_rpc_error(exc)}" if status == "unavailable" \
            else output.describe_rpc_error(exc)
        return Part(source, status=status, detail="; ".join(line.strip() for line in detail.splitlines()))


async def gather(customer: str, targets: Mapping[str, str], metadata: Metadata, deadline: float) -> list[Part]:
    """Every source in parallel; a source's failure becomes its part's status, never an exception
    (except a customer profile does not know)."""
    return list(await asyncio.gather(*(_ask(s, targets[s], customer, metadata, deadline) for s in SOURCES)))


def as_json(customer: str, parts: list[Part]) -> dict[str, Any]:
    missing = [p.source for p in parts if p.status != "ok"]
    return {"customer": customer, "partial": bool(missing), "unavailable": missing,
            "as_of": datetime.now(UTC).isoformat(timespec="seconds"),
            **{p.source: p.as_dict() for p in parts}}
