"""Customer routes over ProfileService: HTTP -> request message, one call, message -> JSON.

Reads go out with the audit purpose CUSTOMER_SERVICE, the purpose of a channel serving the
customer in front of it. So the roles that read here are the ones that serve customers or
assess them one at a time; marketers and auditors read through their own services and purposes
(consented campaigns, the audit trail), not through the counter's route. The profile service
masks personal data for the caller's role and keeps a relationship manager to their own book.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crm_gateway.auth import forwarded, require_roles, roles_text
from crm_gateway.problems import problem_responses
from crm_gateway.routes.common import CustomerId, IdempotencyKey, PeersDep, answer, keyed, parse
from crm_gateway.schemas import proto_model
from crmkit.auth import Principal, Role

READ_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.RISK_OFFICER, Role.ANALYST, Role.ADMIN})
CREATE_ROLES = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
CUSTOMER_SERVICE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)

Customer = proto_model(customer_pb2.Customer.DESCRIPTOR)
CustomerInput = proto_model(customer_pb2.Customer.DESCRIPTOR, for_input=True)

router = APIRouter(prefix="/v1/customers", tags=["customers"])

Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
Creator = Annotated[Principal, Depends(require_roles(*CREATE_ROLES))]


@router.get(
    "/{customer_id}", name="get_customer", summary="Get a customer",
    description="The customer, with personal data masked for the caller's role (`masked_fields` "
                f"lists what was masked). Read for customer service and audited. Roles: {roles_text(READ_ROLES)}.",
    response_model=Customer, responses=problem_responses(400, 404),
)
async def get_customer(
    customer_id: CustomerId, principal: Reader, peers: PeersDep,
) -> JSONResponse:
    response = await peers.profile.GetCustomer(
        pb.GetCustomerRequest(name=f"customers/{customer_id}", audit=CUSTOMER_SERVICE),
        metadata=forwarded(principal))
    return answer(response.customer)


@router.post(
    "", name="create_customer", status_code=201, summary="Create a customer",
    description="Creates the customer given in the body (`customer_id` may be left out to get a generated "
                "one). Every bad field is reported at once in `invalid_params`, and nothing is created. "
                f"Roles: {roles_text(CREATE_ROLES)}.",
    response_model=Customer, responses=problem_responses(400, 409, 413),
)
async def create_customer(
    customer: Annotated[CustomerInput, Body(description="The customer; output-only fields are ignored.")],  # type: ignore[valid-type]  # pydantic create_model: a run-time type
    principal: Creator, peers: PeersDep, request: Request, idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    message = parse(customer, customer_pb2.Customer, "customer")
    response = await peers.profile.CreateCustomer(
        keyed(pb.CreateCustomerRequest(customer=message), idempotency_key), metadata=forwarded(principal))
    created = response.customer
    location = request.app.url_path_for("get_customer", customer_id=created.customer_id)
    return answer(created, status_code=201, headers={"Location": str(location)})
