"""Customer orchestration, in the caller's unit of work (crmkit.db's rule): the change, its values,
history, audit record and change-feed event land in one transaction."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message

from crm_profile.attributes import rules as attribute_rules
from crm_profile.attributes.model import AttributeValue
from crm_profile.attributes.service import CustomerValues
from crm_profile.customers import rules
from crm_profile.customers.model import Customer, CustomerView
from crm_profile.customers.repository import CustomerRepository
from crm_profile.features import rules as feature_rules
from crm_profile.features.writer import FeatureWriter
from crm_profile.history.rules import API_SOURCE_SYSTEM
from crm_profile.history.service import FieldHistory
from crm_profile.tables import audit_record
from crmkit.audit import DENIED, AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import AlreadyExists, NotFound, PermissionDenied
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose
from crmkit.validation import Violations

# Turns a stored customer into the change-feed payload (a masked message); supplied by the API
# layer so this module stays free of generated protos.
FeedPayload = Callable[[Customer], Message]
# The feed's resource type of customer events (the proto message's full name).
CUSTOMER_TYPE = "crm.profile.v1.Customer"


class Customers:
    """The customer use cases: keyword-only, the caller's unit of work first (crmkit.db's rule),
    the calling principal. `get` is the one exception: see there."""

    def __init__(
        self, *, db: Database, repository: CustomerRepository, outbox: Outbox, idempotency: IdempotencyKeys,
        audit: AuditWriter, page_tokens: PageTokens, feed_payload: FeedPayload, values: CustomerValues,
        history: FieldHistory, features: FeatureWriter | None = None,
    ) -> None:
        # Only for `get`, the hot read path on `Database.raw()`; every other use case runs in the
        # unit of work its caller passes in.
        self._db = db
        self._features = features
        self._repository = repository
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._values = values
        self._history = history

    async def create(self, *, uow: UnitOfWork, customer: Customer, request_id: uuid.UUID | None, request: Message,
                     actor: Principal) -> CustomerView:
        customer = rules.normalise(customer)
        if not customer.customer_id:
            customer = dataclasses.replace(customer, customer_id=str(uuid.uuid4()))
        if customer.onboarded_on is None:
            customer = dataclasses.replace(customer, onboarded_on=datetime.now(UTC).date())
        customer = dataclasses.replace(customer, source_system=customer.source_system or API_SOURCE_SYSTEM)
        today = datetime.now(UTC).date()
        customer = await self._values.check(uow=uow, customer=customer, today=today,
                                            core=rules.validate(customer, today=today))
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateCustomer",
            resource_name=customer.name, replay=lambda name: self._replay(uow=uow, name=name))
        if replayed is not None:
            return rules.view_for(actor, replayed)
        created = await self._repository.insert(uow, customer)
        if created is None:
            raise AlreadyExists(f"customer {customer.customer_id} already exists", reason="CUSTOMER_EXISTS",
                                metadata={"customer_id": customer.customer_id})
        created = await self._values.store(uow=uow, stored=created, wanted=customer, previous=None)
        await self._history.record(uow=uow, before=None, after=created, actor=actor.subject)
        await self._outbox.append(uow, resource_name=created.name, change_type=ChangeType.CHANGE_TYPE_CREATED,
                                  payload=self._feed_payload(created), actor=actor.subject)
        # Last before the commit: the audit chain's lock, which every change waits for, is then
        # held for the chain's own two statements and the commit alone.
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.create", resource_name=created.name,
            purpose="DATA_MANAGEMENT", fields=rules.written_paths(None, created))])
        return rules.view_for(actor, created)

    async def get(self, *, customer_id: str, purpose: Purpose, actor: Principal) -> CustomerView:
        """GetCustomer: the documented exception to crmkit.db's rule. It opens its own `raw()`
        connection and takes no unit of work: one primary-key read, hand-written SQL, no
        transaction, because SQLAlchemy's greenlet bridge and a BEGIN cost more CPU than the
        statement on the service's hottest path. The read's audit record goes through the
        group-commit writer, as every read's does."""
        async with self._db.raw() as connection:
            found = await self._repository.fetch(connection, customer_id)
        if found is None:
            raise not_found(customer_id)
        try:
            rules.check_book(actor, found)
        except PermissionDenied:
            # The refusal is evidence too; the read chain commits it although the call fails.
            await self._audit.record(AuditEntry(
                principal=actor.subject, action="customer.read", resource_name=found.name, purpose=purpose.purpose,
                justification=purpose.justification, outcome=DENIED))
            raise
        view = rules.view_for(actor, found)
        # One entry, made once its fields are known (each one made takes the caller's roles and method).
        await self._audit.record(AuditEntry(
            principal=actor.subject, action="customer.read", resource_name=found.name, purpose=purpose.purpose,
            justification=purpose.justification, fields=view.clear_fields))
        return view

    async def list(
        self, *, uow: UnitOfWork, page_size: int, page_token: str, relationship_manager_id: str, branch_id: str,
        purpose: Purpose, actor: Principal,
    ) -> Page[CustomerView]:
        if actor.is_relationship_manager_only:
            relationship_manager_id = actor.subject
        limit = clamp_page_size(page_size)
        query = {"rm": relationship_manager_id, "branch": branch_id}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page(uow, after=after, limit=limit + 1,
                                            relationship_manager_id=relationship_manager_id, branch_id=branch_id)
        page = self._page_tokens.page(found, limit=limit, key=lambda c: c.customer_id, query=query)
        views = [rules.view_for(actor, c) for c in page.items]
        await self._audit.record(*(AuditEntry(principal=actor.subject, action="customer.list",
                                              resource_name=view.customer.name, purpose=purpose.purpose,
                                              justification=purpose.justification, fields=view.clear_fields)
                                   for view in views))
        return Page(views, page.next_page_token)

    async def update(
        self, *, uow: UnitOfWork, changes: Customer, paths: Sequence[str], etag: str, purpose: Purpose,
        actor: Principal,
    ) -> CustomerView:
        _check_mask(paths)
        current = await self._locked(uow=uow, customer_id=changes.customer_id, etag=etag,
                                     check=lambda c: _check_writable(actor, c))
        merged = rules.normalise(_apply(current, changes, paths))
        today = datetime.now(UTC).date()
        merged = await self._values.check(uow=uow, customer=merged, today=today,
                                          core=rules.validate(merged, today=today),
                                          keys=_written_keys(current, merged))
        updated = await self._values.store(uow=uow, stored=await self._repository.update(uow, merged),
                                           wanted=merged, previous=current)
        if self._features is not None and feature_rules.needs_recompute(current, updated):
            await self._features.mark(uow=uow, customer_ids=[updated.customer_id])
        return await self._updated(uow=uow, current=current, updated=updated, purpose=purpose, actor=actor)

    async def set_attributes(
        self, *, uow: UnitOfWork, customer_id: str, values: Mapping[str, AttributeValue], remove: Sequence[str],
        etag: str, purpose: Purpose, actor: Principal,
    ) -> CustomerView:
        """Set and remove custom attribute values in one change (SetCustomerAttributes)."""
        today = datetime.now(UTC).date()
        current = await self._locked(uow=uow, customer_id=customer_id, etag=etag,
                                     check=lambda c: _check_writable(actor, c))
        removal_problems = attribute_rules.check_removals(
            values, remove, await self._values.definitions(uow=uow, keys=remove))
        wanted = dataclasses.replace(current, attributes={
            **{k: v for k, v in current.attributes.items() if k not in remove}, **values})
        merged = await self._values.check(uow=uow, customer=wanted, today=today, core=Violations(), keys=set(values),
                                          prefix="", extra=removal_problems)
        if merged.attributes == current.attributes:
            return rules.view_for(actor, current)  # a retry, or nothing to change: no new version
        updated = await self._values.store(uow=uow, stored=await self._repository.update(uow, merged),
                                           wanted=merged, previous=current)
        return await self._updated(uow=uow, current=current, updated=updated, purpose=purpose, actor=actor)

    async def _updated(self, *, uow: UnitOfWork, current: Customer, updated: Customer, purpose: Purpose,
                       actor: Principal) -> CustomerView:
        """What every change of a customer leaves behind, in its unit of work: the field history,
        the audit record naming the fields written, and the change-feed event."""
        await self._history.record(uow=uow, before=current, after=updated, actor=actor.subject)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.update", resource_name=updated.name,
            purpose=purpose.purpose, justification=purpose.justification,
            fields=rules.written_paths(current, updated))])
        await self._outbox.append(uow, resource_name=updated.name, change_type=ChangeType.CHANGE_TYPE_UPDATED,
                                  payload=self._feed_payload(updated), actor=actor.subject)
        return rules.view_for(actor, updated)

    async def delete(self, *, uow: UnitOfWork, customer_id: str, etag: str, purpose: Purpose,
                     actor: Principal) -> None:
        current = await self._locked(uow=uow, customer_id=customer_id, etag=etag, check=rules.ensure_active)
        await self._repository.delete(uow, customer_id)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.delete", resource_name=current.name,
            purpose=purpose.purpose, justification=purpose.justification)])
        await self._outbox.append(uow, resource_name=current.name, change_type=ChangeType.CHANGE_TYPE_DELETED,
                                  payload=None, actor=actor.subject, resource_type=CUSTOMER_TYPE)

    async def _locked(self, *, uow: UnitOfWork, customer_id: str, etag: str,
                      check: Callable[[Customer], object]) -> Customer:
        """The customer row locked for the rest of the unit of work, after `check` and the etag."""
        return await load_for_update(self._repository.get(uow, customer_id, for_update=True), etag=etag,
                                     not_found=lambda: not_found(customer_id), check=check)

    async def _replay(self, *, uow: UnitOfWork, name: str) -> Customer:
        """The customer an earlier CreateCustomer with the same request_id created."""
        existing = await self._repository.get(uow, name.removeprefix("customers/"))
        if existing is None:
            raise NotFound("the customer created by this request no longer exists", reason="CUSTOMER_NOT_FOUND")
        return existing


def not_found(customer_id: str) -> NotFound:
    return NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")


def _check_writable(actor: Principal, customer: Customer) -> None:
    """A change needs the customer in the caller's book and live (not merged away or erased)."""
    rules.check_book(actor, customer)
    rules.ensure_active(customer)


# Request path -> domain fields it sets.
_PATH_FIELDS = {"id_document": ("id_type", "id_number", "id_issuing_country", "id_expires_on")}


def _check_mask(paths: Sequence[str]) -> None:
    violations = Violations()
    violations.update_mask(paths, rules.UPDATABLE_PATHS, accepts=lambda p: _attribute_key(p) is not None)
    violations.raise_if_any()


def _apply(current: Customer, changes: Customer, paths: Sequence[str]) -> Customer:
    fields = [f for p in paths if _attribute_key(p) is None for f in _PATH_FIELDS.get(p, (p,))]
    merged = dataclasses.replace(current, **{f: getattr(changes, f) for f in fields})
    keys = [key for p in paths if (key := _attribute_key(p)) is not None]
    if keys and "attributes" not in paths:  # `attributes.<key>`: set that value, or remove it when not sent
        values = dict(current.attributes)
        for key in keys:
            if key in changes.attributes:
                values[key] = changes.attributes[key]
            else:
                values.pop(key, None)
        merged.attributes = values
    return merged


def _attribute_key(path: str) -> str | None:
    """`credit_score` for the mask path `attributes.credit_score`; None for other paths."""
    prefix, _, key = path.partition(".")
    return key if prefix == "attributes" and attribute_rules.ATTRIBUTE_ID.fullmatch(key) else None


def _written_keys(current: Customer, merged: Customer) -> set[str]:
    """Attribute values an update writes anew: only these are checked against their definitions."""
    return {k for k, v in merged.attributes.items() if current.attributes.get(k) != v or k not in current.attributes}

