"""What every route shares, so that a route per RPC is a few lines and they all behave alike.

- `Annotated[Principal, Depends(require_roles(*ROLES))]`: the verified caller, admitted by the
  route's roles and rate limit (auth.py); each module names one alias per set of roles.
- `IdempotencyKey`: the `Idempotency-Key` header every POST declares (`RequiredIdempotencyKey`
  where the service requires it); `keyed()` puts it in the
  request message's `request_id`, so a retry replays the service's first answer and the same key
  with another body is refused by the service (`REQUEST_ID_REUSED`, 400 naming the header).
- `Page`: `page_size` and `page_token` query parameters, set on the request the same way for
  every list; the answer carries the service's `next_page_token` unchanged.
- `parse()`: a validated body model to its proto message; `answer()`: a message to JSON in the
  proto3 mapping with proto field names, `Cache-Control: no-store` (personal data).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from pydantic import BaseModel, create_model

from crm_gateway.peers import Peers, get_peers
from crm_gateway.schemas import proto_model, to_json
from crmkit.errors import FieldViolation, InvalidArgument

M = TypeVar("M", bound=Message)

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_TEXT = ("A UUID the client makes per operation: a retry with the same key (after a timeout, say) "
                    "returns the first attempt's answer instead of doing it twice. The same key with a different "
                    "body is refused (400, reason `REQUEST_ID_REUSED`). Keys are per caller.")
IdempotencyKey = Annotated[uuid.UUID | None, Header(alias=IDEMPOTENCY_HEADER, description=IDEMPOTENCY_TEXT)]
# For a route whose service refuses a call without one (a retried filing must not file twice): the
# document says so, and a request without it is refused here, naming the header.
RequiredIdempotencyKey = Annotated[uuid.UUID, Header(alias=IDEMPOTENCY_HEADER,
                                                     description=IDEMPOTENCY_TEXT + " Required on this route.")]
PeersDep = Annotated[Peers, Depends(get_peers)]
# The contract's rule for customer ids (crm.profile.v1.Customer.customer_id).
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CustomerId = Annotated[str, Path(pattern=CUSTOMER_ID_PATTERN, description="The bank's customer number.",
                                 examples=["C000123"])]
RESOURCE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


@dataclass(frozen=True, slots=True)
class Page:
    """The page parameters of every list route, as the services take them."""

    page_size: int
    page_token: str

    def apply(self, request: M) -> M:
        request.page_size = self.page_size  # type: ignore[attr-defined]  # every List request has both
        request.page_token = self.page_token  # type: ignore[attr-defined]
        return request


def page(
    page_size: Annotated[int, Query(ge=0, le=1000, description="Items per page, 1 to 1000; 0 or absent "
                                    "for the service's default.")] = 0,
    page_token: Annotated[str, Query(max_length=4096, description="`next_page_token` of the previous "
                                     "page; absent for the first. Use it with the same filters.")] = "",
) -> Page:
    return Page(page_size=page_size, page_token=page_token)


PageDep = Annotated[Page, Depends(page)]


def keyed(request: M, key: uuid.UUID | None) -> M:
    """The request with the `Idempotency-Key` as its `request_id` (unset without a key). A POST
    that changes nothing (a preview) has no `request_id`: the key is accepted and has no effect."""
    if key is not None and "request_id" in request.DESCRIPTOR.fields_by_name:
        request.request_id = str(key)  # type: ignore[attr-defined]  # checked just above
    return request


def enum_names(enum: Any) -> Any:
    """A `Literal` of an enum's value names but the zero one, for a query parameter (a generated
    enum wrapper, e.g. `complaint_pb2.ComplaintStatus`)."""
    return Literal[tuple(name for name, number in enum.items() if number != 0)]


def paged(message: Message, items: str) -> dict[str, Any]:
    """A list response as every list route answers it: `{items: [...], next_page_token}`, the
    items under the service's own field name, the token empty on the last page."""
    body = as_json(message)
    return {items: body.get(items, []), "next_page_token": body.get("next_page_token", "")}


def parse(body: BaseModel, message_type: type[M], name: str) -> M:
    """A validated body to its message; shapes the model cannot express are a 400 naming `name`."""
    try:
        return json_format.ParseDict(to_json(body), message_type())
    except json_format.ParseError as exc:
        raise InvalidArgument([FieldViolation(name, str(exc))]) from exc


def as_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def answer(message: Message | dict[str, Any], *, status_code: int = 200,
           headers: dict[str, str] | None = None) -> JSONResponse:
    """The message as JSON; no shared cache or browser may keep it (personal data)."""
    body = message if isinstance(message, dict) else as_json(message)
    return JSONResponse(body, status_code=status_code, headers={"Cache-Control": "no-store", **(headers or {})})


def page_model(name: str, items: str, item: Descriptor) -> type[BaseModel]:
    """The schema of a list route's answer (see `paged`)."""
    model: Any = proto_model(item)
    fields: dict[str, Any] = {items: (list[model], ...), "next_page_token": (str, ...)}
    return create_model(name, __doc__=f"A page of `{item.full_name}`; `next_page_token` is empty on the last page.",
                        **fields)
