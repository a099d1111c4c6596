"""Attribute catalogue RPCs and SetCustomerAttributes: proto -> arguments, one unit of work and one
service call in it, result -> proto."""

from __future__ import annotations

import grpc

from crm.profile.v1 import attribute_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crm_profile.api import customer_messages
from crm_profile.api.attribute_messages import definition_to_domain, definition_to_proto, values_to_domain
from crm_profile.attributes.service import AttributeCatalogue
from crm_profile.customers.service import Customers
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.idempotency import parse_request_id
from crmkit.resources import ResourceName, purpose_from

ATTRIBUTE_DEFINITION = ResourceName("attributeDefinitions/{attribute_id}")
CUSTOMER = ResourceName("customers/{customer_id}")


class AttributeRpcs:
    """The typed attribute catalogue, and custom attribute values of one customer."""

    _db: Database
    _attribute_catalogue: AttributeCatalogue
    _customers: Customers

    async def CreateAttributeDefinition(
        self, request: attribute_pb2.CreateAttributeDefinitionRequest, context: grpc.aio.ServicerContext,
    ) -> attribute_pb2.CreateAttributeDefinitionResponse:
        async with self._db.unit_of_work() as uow:
            created = await self._attribute_catalogue.create(uow=uow,
                definition=definition_to_domain(request.attribute_definition),
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return attribute_pb2.CreateAttributeDefinitionResponse(attribute_definition=definition_to_proto(created))

    async def GetAttributeDefinition(
        self, request: attribute_pb2.GetAttributeDefinitionRequest, context: grpc.aio.ServicerContext,
    ) -> attribute_pb2.GetAttributeDefinitionResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            found = await self._attribute_catalogue.get(
                uow=uow, attribute_id=ATTRIBUTE_DEFINITION.parse_one(request.name))
        return attribute_pb2.GetAttributeDefinitionResponse(attribute_definition=definition_to_proto(found))

    async def ListAttributeDefinitions(
        self, request: attribute_pb2.ListAttributeDefinitionsRequest, context: grpc.aio.ServicerContext,
    ) -> attribute_pb2.ListAttributeDefinitionsResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._attribute_catalogue.list(
                uow=uow, page_size=request.page_size, page_token=request.page_token,
                                               data_class=request.data_class, source_system=request.source_system)
        return attribute_pb2.ListAttributeDefinitionsResponse(
            attribute_definitions=[definition_to_proto(d) for d in page.items],
            next_page_token=page.next_page_token)

    async def UpdateAttributeDefinition(
        self, request: attribute_pb2.UpdateAttributeDefinitionRequest, context: grpc.aio.ServicerContext,
    ) -> attribute_pb2.UpdateAttributeDefinitionResponse:
        attribute_id = ATTRIBUTE_DEFINITION.parse_one(request.attribute_definition.name, "attribute_definition.name")
        async with self._db.unit_of_work() as uow:
            updated = await self._attribute_catalogue.update(uow=uow,
                changes=definition_to_domain(request.attribute_definition, attribute_id=attribute_id),
                paths=list(request.update_mask.paths), etag=request.attribute_definition.etag,
                           actor=current_principal())
        return attribute_pb2.UpdateAttributeDefinitionResponse(attribute_definition=definition_to_proto(updated))

    async def DeleteAttributeDefinition(
        self, request: attribute_pb2.DeleteAttributeDefinitionRequest, context: grpc.aio.ServicerContext,
    ) -> attribute_pb2.DeleteAttributeDefinitionResponse:
        async with self._db.unit_of_work() as uow:
            removed = await self._attribute_catalogue.delete(
                uow=uow, attribute_id=ATTRIBUTE_DEFINITION.parse_one(request.name),
                                                    etag=request.etag, force=request.force, actor=current_principal())
        return attribute_pb2.DeleteAttributeDefinitionResponse(removed_value_count=removed)

    async def SetCustomerAttributes(
        self, request: pb.SetCustomerAttributesRequest, context: grpc.aio.ServicerContext,
    ) -> pb.SetCustomerAttributesResponse:
        customer_id = CUSTOMER.parse_one(request.name)
        purpose = purpose_from(request.audit)
        bad: list[FieldViolation] = []
        values = values_to_domain(request.attributes, prefix="", bad=bad)
        if bad:
            raise InvalidArgument(bad)
        async with self._db.unit_of_work() as uow:
            view = await self._customers.set_attributes(uow=uow,
                customer_id=customer_id, values=values, remove=list(request.remove_attributes), etag=request.etag,
                purpose=purpose, actor=current_principal())
        return pb.SetCustomerAttributesResponse(customer=customer_messages.to_proto(view))
