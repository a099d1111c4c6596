"""Field history and stale data: recorded inside every change's unit of work, read by staff.

`FieldHistory.record` is the one way a change to a customer reaches the history: customer
create and update, attribute writes, and -- for the other sub-domains -- merges, unmerges and
erasures, each with its own `ChangeSource` (bulk imports write the same rows in their merge,
imports.repository). It writes in the caller's transaction, so a change and its history commit
or roll back together.

A creation is stored as one entry that lists the fields set (history.rules); `list_changes`
shows it as before, one SET per field with its value at creation, reconstructed from the later
changes and the current record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from crm_profile.attributes.repository import AttributeRepository
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import Customer
from crm_profile.customers.repository import CustomerRepository
from crm_profile.history import rules
from crm_profile.history.model import ChangeSource, FieldChangeKind
from crm_profile.history.repository import HistoryRepository, StaleRow, StoredChange
from crm_profile.history.rules import Change, EnumNames
from crm_profile.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound
from crmkit.locking import load_for_update
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose


@dataclasses.dataclass(frozen=True)
class FieldChangeView:
    change: StoredChange
    masked: bool


@dataclasses.dataclass(frozen=True)
class StaleField:
    customer_id: str
    field: str
    last_confirm_time: datetime
    max_age: timedelta
    overdue: timedelta


@dataclasses.dataclass(frozen=True)
class Confirmation:
    field: str
    confirm_time: datetime


class FieldHistory:
    def __init__(
        self, *, repository: HistoryRepository, customers: CustomerRepository,
        attributes: AttributeRepository, audit: AuditWriter, page_tokens: PageTokens, enum_names: EnumNames,
        core_max_age_days: Mapping[str, int],
    ) -> None:
        self._repository = repository
        self._customers = customers
        self._attributes = attributes
        self._audit = audit
        self._page_tokens = page_tokens
        self._enum_names = enum_names
        self._core_max_age_days = dict(core_max_age_days)

    # --- writing (inside other use cases' units of work) -----------------------------------------

    async def record(
        self, *, uow: UnitOfWork, before: Customer | None, after: Customer | None, actor: str,
        source: ChangeSource = ChangeSource.API, source_system: str = rules.API_SOURCE_SYSTEM, origin: str = "",
    ) -> list[Change]:
        """Write the field changes from `before` to `after` (None for a new or removed record)
        and restart the age of every changed field; returns the entries written.

        A new record (`before` None) gets its one creation entry and no confirmation rows: its
        creation confirms every field it sets (see history.rules)."""
        changed = after or before
        assert changed is not None, "a change needs a before or an after"
        customer_id = changed.customer_id
        if before is None:
            assert after is not None
            created = [rules.creation(after)]
            await self._repository.append(uow, customer_id, created, actor=actor, source=source,
                                          source_system=source_system, origin=origin)
            return created
        cleared = FieldChangeKind.ERASED if source in (ChangeSource.ERASURE, ChangeSource.RETENTION) \
            else FieldChangeKind.CLEARED
        if after is None:
            changes = rules.diff(rules.snapshot(before, self._enum_names), {}, cleared=cleared)
        else:
            changes = rules.changes(before, after, self._enum_names, cleared=cleared)
        await self._repository.append(uow, customer_id, changes, actor=actor, source=source,
                                      source_system=source_system, origin=origin)
        if after is not None:
            await self._repository.confirm(uow, customer_id, [c.field for c in changes
                                                                  if c.kind is FieldChangeKind.SET])
            await self._repository.forget(uow, customer_id, [c.field for c in changes
                                                                 if c.kind is not FieldChangeKind.SET])
        return changes

    async def erase(self, *, uow: UnitOfWork, customer_id: str) -> int:
        """For EraseCustomer, inside its unit of work: remove the personal values kept in the
        customer's history (record the erasure itself with `record(..., source=ERASURE)`)."""
        return await self._repository.erase_personal_values(uow, customer_id)

    # --- reading ---------------------------------------------------------------------------------

    async def list_changes(
        self, *, uow: UnitOfWork, customer_id: str, page_size: int, page_token: str, fields: Sequence[str],
        start: datetime | None, end: datetime | None, purpose: Purpose, actor: Principal,
    ) -> Page[FieldChangeView]:
        rules.check_paths(fields, field="fields", limit=rules.MAX_FILTER_PATHS)
        limit = clamp_page_size(page_size)
        query = {"customer": customer_id, "fields": list(fields), "start": str(start), "end": str(end)}
        cursor = _cursor(self._page_tokens.decode(page_token, query=query))
        customer = await self._customers.get(uow, customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")
        customer_rules.check_book(actor, customer)
        found, _ = await self.entries(uow=uow, customer=customer, cursor=cursor, limit=limit + 1, fields=fields,
                                      start=start, end=end)
        page = self._page_tokens.page(found, limit=limit, key=lambda c: [c.field_change_id, c.field], query=query)
        await self._audit.record(AuditEntry(principal=actor.subject, action="customer.history.read",
                                            resource_name=customer.name, purpose=purpose.purpose,
                                            justification=purpose.justification))
        clear = actor.has_any(customer_rules.CLEAR_READERS)
        views = [FieldChangeView(c, False) if clear or not c.personal else
                 FieldChangeView(dataclasses.replace(c, old=rules.mask(c.field, c.old), new=rules.mask(c.field, c.new)),
                                 True)
                 for c in page.items]
        return Page(views, page.next_page_token)

    async def entries(
        self, *, uow: UnitOfWork, customer: Customer, cursor: tuple[int, str] | None, limit: int,
        fields: Sequence[str] = (), start: datetime | None = None, end: datetime | None = None,
    ) -> tuple[list[StoredChange], bool]:
        """The customer's history as it reads, in the caller's unit of work (also for other use cases,
        such as the data-subject export): up to `limit` entries after `cursor`, newest first, a
        creation as one SET per field it set (last field first, `part` numbering them) with the
        field's value at creation; and whether there are more. Entries are ordered by (id, field)
        descending: `next_cursor(entries)` is where the next page starts. No access checks and no
        audit record: those are the caller's."""
        found: list[StoredChange] = []
        before_id = cursor[0] + 1 if cursor is not None else None  # the cursor's creation may go on
        while True:
            rows = await self._repository.page(uow, customer.customer_id, before_id=before_id, limit=limit + 1,
                                               fields=fields, start=start, end=end)
            for row in rows:
                for entry in await self._listed(uow=uow, customer=customer, row=row, fields=fields):
                    if cursor is None or (entry.field_change_id, entry.field) < cursor:
                        found.append(entry)
            if len(found) > limit or len(rows) <= limit:
                return found[:limit], len(found) > limit
            before_id = rows[-1].field_change_id

    async def _listed(self, *, uow: UnitOfWork, customer: Customer, row: StoredChange,
                      fields: Sequence[str]) -> list[StoredChange]:
        """A stored change as itself; a creation entry as one SET per field it set (that `fields`
        selects), last field first, with the field's value at creation."""
        if row.field != rules.RECORD:
            return [row]
        paths = rules.created_paths(row.new)
        selected = [p for p in paths if rules.selects(fields, p)]
        if not selected:
            return []
        later = await self._repository.later_creation(uow, customer.customer_id, after_id=row.field_change_id)
        first_olds = await self._repository.first_olds(uow, customer.customer_id, selected,
                                                       after_id=row.field_change_id, before_id=later)
        current = rules.snapshot(customer, self._enum_names) if later is None else {}
        values = rules.creation_values(selected, first_olds=first_olds, current=current)
        part = {p: i for i, p in enumerate(paths, start=1)}
        return [dataclasses.replace(row, field=p, kind=FieldChangeKind.SET, old="", new=values[p].text,
                                    personal=values[p].personal, part=part[p])
                for p in reversed(selected)]

    async def list_stale(
        self, *, uow: UnitOfWork, customer_id: str | None, page_size: int, page_token: str, fields: Sequence[str],
        relationship_manager_id: str, branch_id: str, purpose: Purpose, actor: Principal,
    ) -> Page[StaleField]:
        """`customer_id` None lists across the caller's customers (an RM: their own book)."""
        rules.check_paths(fields, field="fields", limit=rules.MAX_FILTER_PATHS)
        limit = clamp_page_size(page_size)
        if customer_id is None and actor.is_relationship_manager_only:
            relationship_manager_id = actor.subject
        query = {"customer": customer_id, "fields": list(fields), "rm": relationship_manager_id, "branch": branch_id}
        after = self._page_tokens.decode(page_token, query=query)
        if customer_id is not None:
            customer = await self._customers.get(uow, customer_id)
            if customer is None:
                raise NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")
            customer_rules.check_book(actor, customer)
        definitions = await self._attributes.definitions(uow)
        ages = rules.max_ages(self._core_max_age_days, {k: d.max_age for k, d in definitions.items()})
        if fields:
            ages = {path: age for path, age in ages.items() if rules.selects(fields, path)}
        rows = await self._repository.stale(
            uow, max_ages=ages, customer_id=customer_id, relationship_manager_id=relationship_manager_id,
            branch_id=branch_id, limit=limit + 1,
            after=(datetime.fromisoformat(after[0]), after[1], after[2]) if after is not None else None)
        page = self._page_tokens.page(rows, limit=limit, key=_stale_key, query=query)
        now = datetime.now(UTC)
        customers = sorted({row.customer_id for row in page.items})
        await self._audit.record(*(AuditEntry(principal=actor.subject, action="customer.stale_fields.read",
                                              resource_name=f"customers/{cid}", purpose=purpose.purpose,
                                              justification=purpose.justification) for cid in customers))
        return Page([StaleField(r.customer_id, r.field, r.confirmed_at, r.max_age,
                                rules.overdue(r.confirmed_at, r.max_age, now)) for r in page.items],
                    page.next_page_token)

    # --- confirming ------------------------------------------------------------------------------

    async def confirm(self, *, uow: UnitOfWork, customer_id: str, fields: Sequence[str], purpose: Purpose,
                      actor: Principal) -> list[Confirmation]:
        rules.check_paths(fields, field="fields", limit=rules.MAX_CONFIRM_PATHS, required=True)
        customer = await load_for_update(self._customers.get(uow, customer_id, for_update=True), etag="",
                                         not_found=lambda: customer_not_found(customer_id),
                                         check=lambda c: customer_rules.check_book(actor, c))
        values = rules.snapshot(customer, self._enum_names)
        for i, path in enumerate(fields):
            if not rules.expand([path], values) or (path not in rules.GROUP_PATHS and path not in values):
                raise FailedPrecondition(f"fields[{i}] '{path}' has no value to confirm", reason="FIELD_EMPTY",
                                         metadata={"field": f"fields[{i}]"})
        paths = rules.expand(fields, values)
        confirmed_at = await self._repository.confirm(uow, customer_id, paths)
        await self._repository.append(
            uow, customer_id,
            [Change(p, FieldChangeKind.CONFIRMED, values[p].text, values[p].text, values[p].personal)
             for p in paths],
            actor=actor.subject, source=ChangeSource.API, source_system=rules.API_SOURCE_SYSTEM, origin="")
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.confirm_fields", resource_name=customer.name,
            purpose=purpose.purpose, justification=f"{purpose.justification} fields={','.join(paths)}"[:400])])
        assert confirmed_at is not None
        return [Confirmation(p, confirmed_at) for p in paths]


def customer_not_found(customer_id: str) -> NotFound:
    return NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")


def next_cursor(entries: Sequence[StoredChange]) -> tuple[int, str]:
    """Where the page after these entries (of `FieldHistory.entries`) starts."""
    return entries[-1].field_change_id, entries[-1].field


def _cursor(decoded: object) -> tuple[int, str] | None:
    """(id, field) of the last entry listed; a bare id from tokens made before creations were
    listed per field means the same as (id, "")."""
    if decoded is None:
        return None
    if isinstance(decoded, int):
        return decoded, ""
    if isinstance(decoded, list) and len(decoded) == 2:
        return int(decoded[0]), str(decoded[1])
    raise ValueError(f"not a field history cursor: {decoded!r}")  # tokens are signed: only a bug gets here


def _stale_key(row: StaleRow) -> tuple[str, str, str]:
    return (row.due_at.isoformat(), row.customer_id, row.field)
