"""Consents and contact preferences of a customer, over ProfileService (read and written for
customer service, audited by the profile service)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from google.protobuf import field_mask_pb2
from pydantic import Field, create_model

from crm.common.v1 import audit_pb2
from crm.profile.v1 import consent_pb2
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import (
    CustomerId,
    IdempotencyKey,
    PageDep,
    PeersDep,
    answer,
    as_json,
    keyed,
    page_model,
    paged,
    parse,
)
from crm_gateway.schemas import proto_model, to_json
from crmkit.auth import Principal, Role

READ_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.RISK_OFFICER, Role.ANALYST, Role.ADMIN})
WRITE_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
Writer = Annotated[Principal, Depends(require_roles(*WRITE_ROLES))]
CUSTOMER_SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)

ConsentStates = page_model("ConsentStatePage", "states", consent_pb2.ConsentState.DESCRIPTOR)
_record: Any = proto_model(consent_pb2.ConsentRecord.DESCRIPTOR, for_input=True)
ConsentRecords: Any = create_model("ConsentRecordsInput", __doc__="Consent decisions to record, at least one.",
                                   # crm_profile.consents.rules.MAX_RECORDS_PER_CALL
                                   consents=(Annotated[list[_record], Field(min_length=1, max_length=50)], ...))
ContactPreferences: Any = proto_model(consent_pb2.ContactPreferences.DESCRIPTOR)
Recorded: Any = proto_model(consent_pb2.RecordConsentResponse.DESCRIPTOR)
ContactPreferencesInput: Any = proto_model(consent_pb2.ContactPreferences.DESCRIPTOR, for_input=True)

router = APIRouter(prefix="/v1/customers/{customer_id}", tags=["consents"])


@router.get("/consents", name="list_consents", summary="List a customer's consents",
            description="The customer's current consent per purpose and channel, a page at a time. "
                        f"Roles: {roles_text(READ_ROLES)}.",
            response_model=ConsentStates, responses=problem_responses(400, 404))
async def list_consents(customer_id: CustomerId, principal: Reader, peers: PeersDep, page: PageDep) -> JSONResponse:
    response = await peers.profile.ListConsents(page.apply(consent_pb2.ListConsentsRequest(
        parent=f"customers/{customer_id}", audit=CUSTOMER_SERVICE)), metadata=forwarded(principal))
    return answer(paged(response, "states"))


@router.post("/consents", name="record_consents", status_code=201, summary="Record consent decisions",
             description="Records the customer's consent decisions (grant or withdraw, per purpose and channel) "
                         f"and answers the records and the resulting states. Roles: {roles_text(WRITE_ROLES)}.",
             response_model=Recorded, responses=problem_responses(400, 404, 409, 413))
async def record_consents(
    customer_id: CustomerId, body: Annotated[ConsentRecords, Body()], principal: Writer, peers: PeersDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    request = parse(body, consent_pb2.RecordConsentRequest, "body")
    request.parent = f"customers/{customer_id}"
    request.audit.CopyFrom(CUSTOMER_SERVICE)
    response = await peers.profile.RecordConsent(keyed(request, idempotency_key), metadata=forwarded(principal))
    return answer(as_json(response), status_code=201)


@router.get("/contact-preferences", name="get_contact_preferences", summary="Get contact preferences",
            description="How and when the customer wants to be contacted, and any do-not-contact flag. "
                        f"Roles: {roles_text(READ_ROLES)}.",
            response_model=ContactPreferences, responses=problem_responses(400, 404))
async def get_contact_preferences(customer_id: CustomerId, principal: Reader, peers: PeersDep) -> JSONResponse:
    response = await peers.profile.GetContactPreferences(consent_pb2.GetContactPreferencesRequest(
        name=f"customers/{customer_id}/contactPreferences", audit=CUSTOMER_SERVICE), metadata=forwarded(principal))
    return answer(response.contact_preferences)


@router.patch("/contact-preferences", name="update_contact_preferences", summary="Update contact preferences",
              description="Changes the fields given in the body (or those named in `update_mask`); the others "
                          f"stay. Roles: {roles_text(WRITE_ROLES)}.",
              response_model=ContactPreferences, responses=problem_responses(400, 404, 409, 413))
async def update_contact_preferences(
    customer_id: CustomerId, preferences: Annotated[ContactPreferencesInput, Body()], principal: Writer,
    peers: PeersDep,
    update_mask: Annotated[str, Query(max_length=1024, pattern=r"^[a-z_.,]*$",
                                      description="Comma-separated fields to change; absent: the fields given.")] = "",
) -> JSONResponse:
    message = parse(preferences, consent_pb2.ContactPreferences, "preferences")
    message.name = f"customers/{customer_id}/contactPreferences"
    given = [name for name in to_json(preferences) if name not in {"name", "etag"}]
    paths = [path for path in update_mask.split(",") if path] if update_mask else given
    response = await peers.profile.UpdateContactPreferences(consent_pb2.UpdateContactPreferencesRequest(
        contact_preferences=message, update_mask=field_mask_pb2.FieldMask(paths=paths), audit=CUSTOMER_SERVICE),
        metadata=forwarded(principal))
    return answer(response.contact_preferences)
