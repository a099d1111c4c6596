"""Relationship RPCs of ProfileService: proto -> arguments, one unit of work and one service call
in it, result -> proto."""

from __future__ import annotations

import grpc

from crm.profile.v1 import relationship_pb2 as pb
from crm_profile.api import relationship_messages
from crm_profile.relationships.service import Relationships
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.idempotency import parse_request_id
from crmkit.resources import ResourceName, purpose_from

CUSTOMER = ResourceName("customers/{customer_id}")


class RelationshipRpcs:
    """Households and related parties."""

    _db: Database
    _relationships: Relationships

    async def CreateRelationship(self, request: pb.CreateRelationshipRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.CreateRelationshipResponse:
        customer_id = CUSTOMER.parse_one(request.parent, "parent")
        async with self._db.unit_of_work() as uow:
            created = await self._relationships.create(uow=uow,
                relationship=relationship_messages.to_domain(request.relationship, customer_id=customer_id),
                request_id=parse_request_id(request.request_id), request=request, purpose=purpose_from(request.audit),
                actor=current_principal(),
            )
        return pb.CreateRelationshipResponse(relationship=relationship_messages.to_proto(created))

    async def ListRelationships(self, request: pb.ListRelationshipsRequest, context: grpc.aio.ServicerContext
                                ) -> pb.ListRelationshipsResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._relationships.list(uow=uow,
                customer_id=CUSTOMER.parse_one(request.parent, "parent"), types=list(request.types),
                page_size=request.page_size, page_token=request.page_token, purpose=purpose_from(request.audit),
                actor=current_principal(),
            )
        return pb.ListRelationshipsResponse(
            relationships=[relationship_messages.to_proto(r) for r in page.items],
            next_page_token=page.next_page_token)

    async def DeleteRelationship(self, request: pb.DeleteRelationshipRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.DeleteRelationshipResponse:
        customer_id, relationship_id = relationship_messages.parse_name(request.name)
        async with self._db.unit_of_work() as uow:
            await self._relationships.delete(uow=uow, customer_id=customer_id, relationship_id=relationship_id,
                                             etag=request.etag, purpose=purpose_from(request.audit),
                                             actor=current_principal())
        return pb.DeleteRelationshipResponse()
