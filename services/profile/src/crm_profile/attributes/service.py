"""The attribute catalogue's use cases, and `CustomerValues`: the attribute values and external
ids of a customer, checked and stored inside the customer use cases' units of work."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import date

from google.protobuf.message import Message

from crm_profile.attributes import rules
from crm_profile.attributes.model import AttributeDefinition
from crm_profile.attributes.repository import AttributeRepository
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import Customer
from crm_profile.customers.repository import CustomerRepository
from crm_profile.history.service import FieldHistory
from crm_profile.tables import audit_record
from crmkit.audit import AuditEntry
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, FailedPrecondition, FieldViolation, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

FeedPayload = Callable[[Customer], Message]


class CustomerValues:
    """Checks and stores a customer's attribute values and external ids (no unit of work of its own)."""

    def __init__(self, *, attributes: AttributeRepository, customers: CustomerRepository) -> None:
        self._attributes = attributes
        self._customers = customers

    async def check(
        self, *, uow: UnitOfWork, customer: Customer, today: date, core: Violations,
        keys: Collection[str] | None = None, prefix: str = "customer.",
        extra: Sequence[tuple[FieldViolation, str]] = (),
    ) -> Customer:
        """The customer with its values marked personal or not; INVALID_ARGUMENT naming every bad
        field (the `core` violations found so far, then attribute values and external ids).

        `keys` limits the attribute check to the values being written (None: all of them), so a
        value stored before a rule was tightened does not block unrelated changes.
        """
        customer_rules.validate_external_ids(customer, core, prefix)
        checked = {k: v for k, v in customer.attributes.items() if keys is None or k in keys}
        definitions = await self._attributes.definitions(uow, customer.attributes)
        problems = [*extra, *rules.check_values(checked, definitions, today=today, prefix=prefix)]
        rules.raise_if_invalid(core, problems)
        fresh = rules.mark_personal({k: customer.attributes[k] for k in checked}, definitions)
        return dataclasses.replace(customer, attributes={**customer.attributes, **fresh})

    async def definitions(self, *, uow: UnitOfWork, keys: Collection[str]) -> dict[str, AttributeDefinition]:
        return await self._attributes.definitions(uow, keys)

    async def store(self, *, uow: UnitOfWork, stored: Customer, wanted: Customer,
                    previous: Customer | None) -> Customer:
        """Write the values and external ids of `wanted` that differ from `previous`; `stored` (the
        customer row just written) with them. ALREADY_EXISTS when another customer holds an
        external id."""
        before = previous.attributes if previous is not None else {}
        changed = {k: v for k, v in wanted.attributes.items() if before.get(k) != v or k not in before}
        removed = set(before) - set(wanted.attributes)
        await self._attributes.write_values(uow, stored.customer_id, changed, remove=removed)
        external_ids = tuple(sorted(set(wanted.external_ids)))
        # A customer row just inserted has no external ids (their foreign key), so a creation
        # without any writes none: no DELETE round trip for nothing.
        if external_ids != (tuple(sorted(set(previous.external_ids))) if previous is not None else ()):
            taken = await self._customers.write_external_ids(uow, stored.customer_id, external_ids)
            if taken is not None:
                raise AlreadyExists(
                    f"external id {taken.source_system}/{taken.id} belongs to another customer",
                    reason="EXTERNAL_ID_TAKEN", metadata={"source_system": taken.source_system})
        return dataclasses.replace(stored, attributes=dict(wanted.attributes), external_ids=external_ids)


class AttributeCatalogue:
    """Create, read, update and delete attribute definitions (the typed catalogue), in the caller's
    unit of work (crmkit.db's rule)."""

    def __init__(
        self, *, repository: AttributeRepository, customers: CustomerRepository,
        history: FieldHistory, outbox: Outbox, idempotency: IdempotencyKeys, page_tokens: PageTokens,
        feed_payload: FeedPayload,
    ) -> None:
        self._repository = repository
        self._customers = customers
        self._history = history
        self._outbox = outbox
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload

    async def create(self, *, uow: UnitOfWork, definition: AttributeDefinition, request_id: uuid.UUID | None,
                     request: Message, actor: Principal) -> AttributeDefinition:
        rules.validate_definition(definition).raise_if_any()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request,
            method="CreateAttributeDefinition", resource_name=definition.name,
            replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return replayed
        created = await self._repository.insert_definition(uow, definition)
        if created is None:
            raise AlreadyExists(f"attribute {definition.attribute_id} already exists", reason="ATTRIBUTE_EXISTS",
                                metadata={"attribute_id": definition.attribute_id})
        return created

    async def get(self, *, uow: UnitOfWork, attribute_id: str) -> AttributeDefinition:
        return _found(await self._repository.get_definition(uow, attribute_id), attribute_id)

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str, data_class: int,
                   source_system: str) -> Page[AttributeDefinition]:
        limit = clamp_page_size(page_size)
        query = {"data_class": data_class, "source_system": source_system}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page_definitions(uow, after=after, limit=limit + 1,
                                                        data_class=data_class, source_system=source_system)
        return self._page_tokens.page(found, limit=limit, key=lambda d: d.attribute_id, query=query)

    async def update(self, *, uow: UnitOfWork, changes: AttributeDefinition, paths: Sequence[str], etag: str,
                     actor: Principal) -> AttributeDefinition:
        rules.check_update_mask(paths)
        current = await self._locked(uow=uow, attribute_id=changes.attribute_id, etag=etag)
        updated = rules.apply_update(current, changes, paths)
        rules.validate_definition(updated, creating=False).raise_if_any()
        held = await self._repository.count_values(uow, current.attribute_id)
        enum_values = await self._repository.held_enum_values(uow, current.attribute_id) if held else []
        rules.check_change_allowed(current, updated, values_held=held, held_enum_values=enum_values)
        return await self._repository.update_definition(uow, updated)

    async def delete(self, *, uow: UnitOfWork, attribute_id: str, etag: str, force: bool, actor: Principal) -> int:
        """Delete the definition; with `force`, remove every customer's value first (each removal
        in the field history and on the change feed). Returns how many values were removed.

        A forced delete touches every holder in one transaction: about a millisecond per holder
        (history row, customer version, feed event), so an attribute held by a million customers
        takes minutes; the bulk path for that is a retention job, not this call.
        """
        await self._locked(uow=uow, attribute_id=attribute_id, etag=etag)
        holders = await self._repository.holders(uow, attribute_id)
        if holders and not force:
            raise FailedPrecondition(
                f"{len(holders)} customers hold a value of {attribute_id}; delete with force to remove them",
                reason="ATTRIBUTE_IN_USE", metadata={"attribute_id": attribute_id})
        events = []
        for customer_id in holders:
            before = await self._customers.get(uow, customer_id, for_update=True)
            if before is None:
                continue
            after = dataclasses.replace(before, attributes={k: v for k, v in before.attributes.items()
                                                            if k != attribute_id})
            updated = dataclasses.replace(await self._customers.update(uow, after),
                                          attributes=after.attributes, external_ids=after.external_ids)
            await self._history.record(uow=uow, before=before, after=updated, actor=actor.subject)
            events.append((updated.name, ChangeType.CHANGE_TYPE_UPDATED, self._feed_payload(updated)))
        removed = await self._repository.delete_all_values(uow, attribute_id)
        await self._repository.delete_definition(uow, attribute_id)
        if holders:
            await append_audit(uow, audit_record, [AuditEntry(
                principal=actor.subject, action="customer.attributes.remove", resource_name=f"customers/{cid}",
                purpose="DATA_MANAGEMENT", justification=f"attribute {attribute_id} deleted") for cid in holders])
        await self._outbox.append_many(uow, events, actor=actor.subject)
        return removed

    async def _locked(self, *, uow: UnitOfWork, attribute_id: str, etag: str) -> AttributeDefinition:
        return await load_for_update(self._repository.get_definition(uow, attribute_id, for_update=True),
                                     etag=etag, not_found=lambda: _not_found(attribute_id))

    async def _replay(self, *, uow: UnitOfWork, name: str) -> AttributeDefinition:
        """The definition an earlier call with the same request_id created."""
        existing = await self._repository.get_definition(uow, name.removeprefix("attributeDefinitions/"))
        if existing is None:
            raise NotFound("the attribute definition created by this request no longer exists",
                           reason="ATTRIBUTE_NOT_FOUND")
        return existing


def _found(definition: AttributeDefinition | None, attribute_id: str) -> AttributeDefinition:
    if definition is None:
        raise _not_found(attribute_id)
    return definition


def _not_found(attribute_id: str) -> NotFound:
    return NotFound(f"attribute definition {attribute_id} not found", reason="ATTRIBUTE_NOT_FOUND")
