"""The data subject's rights: erasure (right to be forgotten) and export (right of access).

Both run in the unit of work their servicer opens (crmkit.db's rule). EraseCustomer: the
customer and those merged into it are locked, each data class is erased, anonymised or
restricted as its retention policy says, the report is kept as evidence, the erasure is audited,
and the change feed announces DELETED so peers drop their copies. ExportCustomerData streams from
one read-only REPEATABLE READ snapshot, so every section is consistent as of the manifest's time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from google.protobuf.message import Message

from crm_profile.attributes.model import DataClass
from crm_profile.consents.model import ConsentRecord
from crm_profile.consents.repository import ConsentRepository, PreferenceRepository
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import ERASED, Customer
from crm_profile.customers.repository import CustomerRepository
from crm_profile.events.model import Event, EventFilter
from crm_profile.events.repository import EventRepository
from crm_profile.events.rules import EVENT_TYPES
from crm_profile.features.repository import FeatureRepository
from crm_profile.history.model import ChangeSource
from crm_profile.history.repository import StoredChange
from crm_profile.history.service import FieldHistory, next_cursor
from crm_profile.holdings.model import Holding, HoldingFilter
from crm_profile.holdings.repository import HoldingRepository
from crm_profile.privacy.audit_log.repository import AuditRepository
from crm_profile.privacy.data_subject import rules
from crm_profile.privacy.data_subject.eraser import CustomerEraser, Erased
from crm_profile.privacy.data_subject.model import ErasureReport, ErasureSpec, ExportManifest, ExportPart
from crm_profile.privacy.data_subject.repository import ErasureRepository
from crm_profile.privacy.retention.repository import RetentionRepository
from crm_profile.relationships.repository import RelationshipRepository
from crm_profile.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Aborted, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.outbox import ChangeType, Outbox
from crmkit.resources import Purpose
from crmkit.validation import Violations

CUSTOMER_TYPE = "crm.profile.v1.Customer"
RELATIONSHIP_TYPE = "crm.profile.v1.Relationship"


class DataSubjectRequests:
    """EraseCustomer and ExportCustomerData."""

    def __init__(
        self, *, repository: ErasureRepository, eraser: CustomerEraser, customers: CustomerRepository,
        policies: RetentionRepository, audit_log: AuditRepository, history: FieldHistory,
        holdings: HoldingRepository, consents: ConsentRepository, preferences: PreferenceRepository,
        relationships: RelationshipRepository, events: EventRepository, features: FeatureRepository, outbox: Outbox,
        idempotency: IdempotencyKeys, audit: AuditWriter,
    ) -> None:
        self._repository = repository
        self._eraser = eraser
        self._customers = customers
        self._policies = policies
        self._audit_log = audit_log
        self._history = history
        self._holdings = holdings
        self._consents = consents
        self._preferences = preferences
        self._relationships = relationships
        self._events = events
        self._features = features
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit

    # --- erasure ---------------------------------------------------------------------------------

    async def erase(self, *, uow: UnitOfWork, customer_id: str, etag: str, validate_only: bool,
                    request_id: uuid.UUID | None, request: Message, purpose: Purpose, actor: Principal,
                    violations: Violations | None = None) -> ErasureReport:
        """`violations`: problems already found reading the request, reported with the rest."""
        violations = violations if violations is not None else Violations()
        rules.check_request_purpose(purpose, violations, case_reference=True)
        violations.raise_if_any()
        if not validate_only:
            stored = await self._idempotency.claim_or_replay(
                uow, principal=actor.subject, request_id=request_id, request=request, method="EraseCustomer",
                resource_name=f"customers/{customer_id}",
                replay=lambda name: self._repository.stored_report(uow, name.removeprefix("customers/")))
            if stored is not None:
                return stored
        locked = await self._lock_tree(uow, customer_id)
        found = locked.get(customer_id)
        if found is not None and found.state == ERASED:  # erased already: its evidence again, nothing changes
            stored = await self._repository.stored_report(uow, customer_id)
            return stored or ErasureReport(customer_id, found.updated_at, ())
        current = await load_for_update(
            _given(found), etag=etag, check=customer_rules.ensure_active,
            not_found=lambda: NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND"))
        tree = [current] + [c for cid, c in locked.items() if cid != customer_id]
        ids = [c.customer_id for c in tree]
        rules.check_erasable(open_holdings=await self._repository.open_holdings(uow, ids))
        policies = await self._policies.policies(uow)
        attribute_classes = await self._repository.attribute_classes(uow)
        plan = rules.erasure_plan(policies)
        inventory = await self._repository.inventory(uow, ids, attribute_classes)
        if validate_only:
            return rules.report(customer_id, inventory=inventory, plan=plan, policies=policies, erase_time=None)
        erase_time = await self._repository.now(uow)
        inventory.closed_on = inventory.closed_on or erase_time.date()  # the erasure ends the relationship
        erasure = rules.report(customer_id, inventory=inventory, plan=plan, policies=policies,
                               erase_time=erase_time)
        spec = ErasureSpec(erase=rules.erased_classes(plan), anonymise_events=rules.anonymised_event_classes(plan),
                           tombstone=True)
        erased = await self._eraser.erase(uow=uow, customers=tree, spec=spec, attribute_classes=attribute_classes,
                                          actor=actor.subject, source=ChangeSource.ERASURE, today=erase_time.date())
        await self._repository.save_report(uow, erasure, erased_by=actor.subject,
                                           case_reference=purpose.justification)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.erase", resource_name=f"customers/{i}",
            purpose=purpose.purpose, justification=purpose.justification) for i in erased.customer_ids])
        await publish_deletions(self._outbox, uow, erased, actor=actor.subject)
        return erasure

    async def _lock_tree(self, uow: UnitOfWork, customer_id: str) -> dict[str, Customer]:
        """The customer and those merged into it (the same person's data), their rows locked in
        customer id order, the order every writer of several customers locks them in (merges, the
        features' recomputation): any other order can deadlock with them. The customer comes first
        in the result, the merged ones after it in merge-tree order."""
        ids = await self._repository.merge_tree(uow, customer_id)
        rows = {}
        for cid in sorted(ids):
            row = await self._customers.get(uow, cid, for_update=True)
            if row is not None:
                rows[cid] = row
        if await self._repository.merge_tree(uow, customer_id) != ids:
            raise Aborted("the customer's merges changed while it was being erased; retry",
                          reason="CONCURRENT_CHANGE")
        return {cid: rows[cid] for cid in ids if cid in rows}

    # --- export ----------------------------------------------------------------------------------

    async def export(self, *, uow: UnitOfWork, customer_id: str, data_classes: Sequence[int], purpose: Purpose,
                     actor: Principal, violations: Violations | None = None) -> AsyncIterator[ExportPart]:
        """Stream the customer's data from `uow`, a read-only unit of work this is the first
        statement of: it becomes REPEATABLE READ, so every section is as of the manifest's time.
        A bad request fails before the first part."""
        violations = violations if violations is not None else Violations()
        rules.check_request_purpose(purpose, violations, case_reference=False)
        classes = rules.check_data_classes(data_classes, "data_classes", violations)
        violations.raise_if_any()
        classes = classes or (*rules.PERSONAL_CLASSES, DataClass.NON_PERSONAL)
        export_id = uuid.uuid4()
        wanted = set(classes)
        await uow.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        customer = await self._customers.get(uow, customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")
        customer_rules.ensure_active(customer)
        snapshot_time = await uow.scalar(sa.select(sa.func.now())) or datetime.now(UTC)
        await self._audit.record(AuditEntry(
            principal=actor.subject, action="customer.export", resource_name=customer.name,
            purpose=purpose.purpose, justification=f"{purpose.justification} export={export_id}".strip()))
        attribute_classes = await self._repository.attribute_classes(uow)
        first = ExportPart(
            manifest=ExportManifest(export_id, customer_id, snapshot_time, tuple(sorted(wanted))),
            customer=rules.customer_for_export(customer, wanted, attribute_classes))
        if DataClass.CONSENT in wanted:
            first.preferences = await self._preferences.get(uow, customer_id,
                                                            language=customer.preferred_language)
        if DataClass.FINANCIAL in wanted:
            first.features = await self._features.get(uow, customer_id)
        yield first
        if DataClass.FINANCIAL in wanted:
            async for holdings in self._holdings_of(uow, customer_id):
                yield ExportPart(holdings=holdings)
        if DataClass.CONSENT in wanted:
            async for records in self._consents_of(uow, customer_id):
                yield ExportPart(consent_records=records)
        if DataClass.DEMOGRAPHIC in wanted:
            for links in rules.sections(await self._relationships.of_customer(uow, customer_id)):
                yield ExportPart(relationships=links)
        if wanted & rules.EVENT_CLASSES:
            async for events in self._events_of(uow, customer_id, wanted):
                yield ExportPart(events=events)
        async for changes in self._changes_of(uow, customer, wanted, attribute_classes):
            yield ExportPart(field_changes=changes)
        if DataClass.AUDIT in wanted:
            after = 0
            while page := await self._audit_log.of_customer(uow, customer_id, after=after,
                                                            limit=rules.EXPORT_SECTION_ITEMS):
                yield ExportPart(access_records=page)
                after = page[-1].seq

    async def _holdings_of(self, uow: UnitOfWork, customer_id: str
                           ) -> AsyncIterator[list[Holding]]:
        after = None
        while page := list(await self._holdings.page(uow, customer_id=customer_id, relationship_manager_id=None,
                                                     narrowing=HoldingFilter(), after=after,
                                                     limit=rules.EXPORT_SECTION_ITEMS)):
            yield page
            after = (page[-1].customer_id, page[-1].holding_id)

    async def _consents_of(self, uow: UnitOfWork, customer_id: str
                           ) -> AsyncIterator[list[ConsentRecord]]:
        before = None
        while page := await self._consents.history(uow, customer_id, purposes=(), channels=(), before_seq=before,
                                                   limit=rules.EXPORT_SECTION_ITEMS):
            yield page
            before = page[-1].seq

    async def _events_of(self, uow: UnitOfWork, customer_id: str, wanted: set[DataClass]
                         ) -> AsyncIterator[list[Event]]:
        types = tuple(t for t in EVENT_TYPES if rules.event_class(t) in wanted)
        narrowing = EventFilter(event_types=types if len(types) < len(EVENT_TYPES) else ())
        customer_ids = await self._events.merged_into(uow, customer_id)
        after = None
        while page := await self._events.page(uow, customer_ids=customer_ids, narrowing=narrowing,
                                              after=after, limit=rules.EXPORT_SECTION_ITEMS):
            yield page
            last = page[-1]
            assert last.occur_time is not None  # a stored event has one (the column is NOT NULL)
            after = (last.occur_time, last.event_id)

    async def _changes_of(self, uow: UnitOfWork, customer: Customer, wanted: set[DataClass],
                          attribute_classes: dict[str, DataClass]) -> AsyncIterator[list[StoredChange]]:
        """The field history as ListFieldChanges reads it (a creation listed per field, with the
        values it set), filtered to the wanted classes."""
        cursor = None
        pending: list[StoredChange] = []
        while True:
            page, more = await self._history.entries(uow=uow, customer=customer, cursor=cursor,
                                                     limit=rules.EXPORT_SECTION_ITEMS)
            pending.extend(c for c in page if rules.field_class(c.field, attribute_classes) in wanted)
            while len(pending) >= rules.EXPORT_SECTION_ITEMS:
                yield pending[:rules.EXPORT_SECTION_ITEMS]
                pending = pending[rules.EXPORT_SECTION_ITEMS:]
            if not more:
                break
            cursor = next_cursor(page)
        if pending:
            yield pending


async def publish_deletions(outbox: Outbox, uow: UnitOfWork, erased: Erased, *, actor: str) -> None:
    """The change events of an erasure: each removed link DELETED, then each customer DELETED, so
    consumers drop their copies."""
    await outbox.append_many(uow, [(r.name, ChangeType.CHANGE_TYPE_DELETED, None) for r in erased.relationships],
                             actor=actor, resource_type=RELATIONSHIP_TYPE)
    await outbox.append_many(uow, [(f"customers/{i}", ChangeType.CHANGE_TYPE_DELETED, None)
                                       for i in erased.customer_ids], actor=actor, resource_type=CUSTOMER_TYPE)


async def _given(customer: Customer | None) -> Customer | None:
    """A row `_lock_tree` has already locked, as the locked read `load_for_update` awaits."""
    return customer
