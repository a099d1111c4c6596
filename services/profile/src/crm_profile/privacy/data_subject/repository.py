"""All SQL of erasure and export. Never commits: the caller's unit of work does.

Erasure reaches into the tables of the other sub-domains on purpose: it is the one place that
must know every column where a customer's personal data can sit (see `rules.py` for the map).
Statements take a list of customer ids: a customer is erased with the customers merged into it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from google.protobuf import any_pb2

from crm_profile.attributes.model import DataClass
from crm_profile.attributes.tables import attribute_definition, customer_attribute
from crm_profile.consents.tables import consent_record, contact_preference
from crm_profile.customers.tables import customer, customer_external_id
from crm_profile.events.rules import TRANSACTION_TYPES
from crm_profile.events.tables import customer_event
from crm_profile.features.tables import customer_aum_history, customer_feature
from crm_profile.history.tables import field_change, field_confirmation
from crm_profile.holdings.model import STATUS_CLOSED
from crm_profile.holdings.tables import holding
from crm_profile.identity.model import MERGE_ACTIVE
from crm_profile.identity.tables import customer_merge, match_candidate, match_name_key
from crm_profile.privacy.data_subject import rules
from crm_profile.privacy.data_subject.model import ErasureReport, Inventory
from crm_profile.privacy.data_subject.tables import customer_erasure
from crm_profile.relationships.model import Relationship
from crm_profile.relationships.tables import customer_relationship
from crm_profile.tables import audit_record, outbox_event
from crmkit.db import UnitOfWork

_TX_TYPES = sorted(TRANSACTION_TYPES)
_HAS_VALUE = sa.or_(field_change.c.old_text.is_not(None), field_change.c.new_text.is_not(None),
                    field_change.c.old_sealed.is_not(None), field_change.c.new_sealed.is_not(None))

# Customers merged (in force) into a customer, at any depth; the customer first.
_MERGE_TREE = sa.text("""
    WITH RECURSIVE tree (customer_id, depth) AS (
        SELECT CAST(:customer_id AS text), 0
        UNION
        SELECT m.source_id, tree.depth + 1 FROM customer_merge m JOIN tree ON m.survivor_id = tree.customer_id
        WHERE m.state = :active AND tree.depth < 32
    )
    SELECT customer_id FROM tree ORDER BY depth, customer_id""")

_CUSTOMER_VALUES = sa.text("""
    SELECT
      coalesce(sum((octet_length(full_name_sealed) > 0)::int + (id_number_sealed IS NOT NULL)::int
                   + (birth_date IS NOT NULL)::int), 0) AS identity,
      coalesce(sum((mobile_phone_sealed IS NOT NULL)::int + (email_sealed IS NOT NULL)::int
                   + (address_sealed IS NOT NULL)::int), 0) AS contact,
      coalesce(sum((gender <> 0)::int + (nationality <> '')::int + (occupation <> '')::int + (kyc_status <> 0)::int
                   + (risk_tolerance <> 0)::int + (relationship_manager_id <> '')::int
                   + (preferred_language <> '')::int), 0) AS demographic
    FROM customer WHERE customer_id = ANY(:ids)""")

# The customer columns each class's erasure blanks (the row stays: it is the tombstone).
_BLANK_COLUMNS: dict[DataClass, dict[str, Any]] = {
    DataClass.IDENTITY: {"full_name_sealed": b"", "id_number_sealed": None, "id_number_index": None, "id_type": 0,
                         "id_issuing_country": "", "id_expires_on": None, "birth_date": None},
    DataClass.CONTACT: {"mobile_phone_sealed": None, "mobile_phone_index": None, "email_sealed": None,
                        "email_index": None, "address_sealed": None},
    DataClass.DEMOGRAPHIC: {"gender": 0, "nationality": "", "occupation": "", "kyc_status": 0, "risk_tolerance": 0,
                            "relationship_manager_id": "", "preferred_language": ""},
}
_ERASED_STATE = 3


def _names(ids: Sequence[str]) -> list[str]:
    return [f"customers/{i}" for i in ids]


def _about(column: sa.ColumnElement[str], ids: Sequence[str]) -> sa.ColumnElement[bool]:
    """`column` names one of the customers or something under it (`customers/X/holdings/H`)."""
    return sa.or_(column.in_(_names(ids)), *(column.startswith(f"customers/{i}/", autoescape=True) for i in ids))


class ErasureRepository:
    async def attribute_classes(self, uow: UnitOfWork) -> dict[str, DataClass]:
        rows = await uow.execute(sa.select(attribute_definition.c.attribute_id, attribute_definition.c.data_class))
        return {row.attribute_id: DataClass(row.data_class) for row in rows}

    async def merge_tree(self, uow: UnitOfWork, customer_id: str) -> list[str]:
        """The customer and the customers merged into it (theirs is the same person's data)."""
        rows = await uow.execute(_MERGE_TREE, {"customer_id": customer_id, "active": MERGE_ACTIVE})
        return [row.customer_id for row in rows]

    async def open_holdings(self, uow: UnitOfWork, ids: Sequence[str]) -> int:
        return int(await uow.scalar(sa.select(sa.func.count()).where(
            holding.c.customer_id.in_(ids), holding.c.status != STATUS_CLOSED)) or 0)

    # --- what there is ---------------------------------------------------------------------------

    async def inventory(self, uow: UnitOfWork, ids: Sequence[str],
                        attribute_classes: Mapping[str, DataClass]) -> Inventory:
        """Counts per class of the customers' records and values (what an erasure reports)."""
        found = Inventory()
        values = (await uow.execute(_CUSTOMER_VALUES, {"ids": list(ids)})).one()
        found.add(DataClass.IDENTITY, values.identity)
        found.add(DataClass.CONTACT, values.contact)
        found.add(DataClass.DEMOGRAPHIC, values.demographic)
        found.add(DataClass.IDENTITY, await _count(uow, customer_external_id,
                                                   customer_external_id.c.customer_id.in_(ids)))
        found.add(DataClass.DEMOGRAPHIC, await _count(uow, customer_relationship,
                                                      customer_relationship.c.customer_id.in_(ids)))
        attributes = await uow.execute(
            sa.select(customer_attribute.c.attribute_id, sa.func.count())
            .where(customer_attribute.c.customer_id.in_(ids))
            .group_by(customer_attribute.c.attribute_id))
        for attribute_id, count in attributes:
            found.add(attribute_classes.get(attribute_id, rules.UNKNOWN_ATTRIBUTE_CLASS), count)
        history = await uow.execute(
            sa.select(field_change.c.field, sa.func.count(), sa.func.max(field_change.c.changed_at))
            .where(field_change.c.customer_id.in_(ids), _HAS_VALUE).group_by(field_change.c.field))
        for field, count, _ in history:
            data_class = rules.field_class(field, attribute_classes)
            if data_class != DataClass.NON_PERSONAL:
                found.add(data_class, count)
        consents = (await uow.execute(
            sa.select(sa.func.count(), sa.func.max(consent_record.c.recorded_at))
            .where(consent_record.c.customer_id.in_(ids)))).one()
        found.add(DataClass.CONSENT, consents[0], consents[1])
        found.add(DataClass.CONSENT, await _count(uow, contact_preference,
                                                  contact_preference.c.customer_id.in_(ids)))
        found.add(DataClass.FINANCIAL, await _count(uow, holding, holding.c.customer_id.in_(ids)))
        found.add(DataClass.FINANCIAL, await _count(uow, customer_feature, customer_feature.c.customer_id.in_(ids)))
        is_transaction = customer_event.c.event_type.in_(_TX_TYPES)
        events = await uow.execute(
            sa.select(is_transaction, sa.func.count(), sa.func.max(customer_event.c.occur_time))
            .where(customer_event.c.customer_id.in_(ids)).group_by(is_transaction))
        for is_transaction, count, newest in events:
            found.add(DataClass.TRANSACTION if is_transaction else DataClass.BEHAVIOUR, count, newest)
        audit = (await uow.execute(
            sa.select(sa.func.count(), sa.func.max(audit_record.c.recorded_at))
            .where(_about(audit_record.c.resource_name, ids)))).one()
        found.add(DataClass.AUDIT, audit[0], audit[1])
        found.closed_on = await uow.scalar(sa.select(customer.c.closed_on).where(customer.c.customer_id == ids[0]))
        return found

    # --- erasing ---------------------------------------------------------------------------------

    async def blank_customer(self, uow: UnitOfWork, customer_id: str, classes: Iterable[DataClass], *,
                             tombstone: bool, today: date) -> None:
        """Blank the row's columns of `classes`; a tombstone is ERASED and its relationship ends."""
        wanted = set(classes)
        values: dict[str, Any] = {}
        for data_class, columns in _BLANK_COLUMNS.items():
            if data_class in wanted:
                values.update(columns)
        if tombstone:
            values.update(state=_ERASED_STATE, merged_into="",
                          closed_on=sa.func.coalesce(customer.c.closed_on, today))
        if {DataClass.IDENTITY, DataClass.CONTACT} <= wanted:
            values["key_id"] = ""  # nothing sealed is left on the row: no key pins it
        await uow.execute(sa.update(customer).where(customer.c.customer_id == customer_id).values(
            **values, version=customer.c.version + 1, updated_at=sa.func.now()))

    async def erase_attributes(self, uow: UnitOfWork, ids: Sequence[str], classes: Iterable[DataClass]) -> int:
        wanted = [int(c) for c in classes]
        of_class = sa.select(attribute_definition.c.attribute_id).where(attribute_definition.c.data_class.in_(wanted))
        result = await uow.execute(sa.delete(customer_attribute).where(
            customer_attribute.c.customer_id.in_(ids), customer_attribute.c.attribute_id.in_(of_class)))
        return int(result.rowcount or 0)

    async def erase_history(self, uow: UnitOfWork, ids: Sequence[str], classes: Iterable[DataClass],
                            attribute_classes: Mapping[str, DataClass]) -> int:
        """Drop the old and new values of the fields of `classes` from the customers' history (who
        changed which field when stays), and their confirmations."""
        wanted = set(classes)
        core = rules.fields_of(wanted)
        attribute_fields = [f"attributes.{key}" for key, c in attribute_classes.items() if c in wanted]
        condition: sa.ColumnElement[bool] = field_change.c.field.in_(core + attribute_fields)
        if rules.UNKNOWN_ATTRIBUTE_CLASS in wanted:  # attributes deleted since: their class is unknown
            known = [f"attributes.{key}" for key in attribute_classes]
            condition = sa.or_(condition, sa.and_(field_change.c.field.startswith("attributes."),
                                                  field_change.c.field.not_in(known)))
        result = await uow.execute(
            sa.update(field_change).where(field_change.c.customer_id.in_(ids), condition, _HAS_VALUE)
            .values(old_text=None, new_text=None, old_sealed=None, new_sealed=None))
        confirmed = sa.or_(field_confirmation.c.field.in_(core + attribute_fields),
                           *([field_confirmation.c.field.startswith("attributes.")]
                             if rules.UNKNOWN_ATTRIBUTE_CLASS in wanted else []))
        await uow.execute(sa.delete(field_confirmation).where(field_confirmation.c.customer_id.in_(ids),
                                                                  confirmed))
        return int(result.rowcount or 0)

    async def erase_identity_links(self, uow: UnitOfWork, ids: Sequence[str]) -> int:
        """External ids, the matcher's name keys and candidate pairs: all identify the person."""
        removed = 0
        for statement in (
            sa.delete(customer_external_id).where(customer_external_id.c.customer_id.in_(ids)),
            sa.delete(match_name_key).where(match_name_key.c.customer_id.in_(ids)),
            sa.delete(match_candidate).where(sa.or_(match_candidate.c.customer_a.in_(ids),
                                                    match_candidate.c.customer_b.in_(ids))),
        ):
            removed += int((await uow.execute(statement)).rowcount or 0)
        return removed

    async def erase_relationships(self, uow: UnitOfWork, ids: Sequence[str]) -> list[Relationship]:
        """Both rows of every link the customers are in; returns the rows removed."""
        t = customer_relationship
        rows = await uow.execute(sa.delete(t).where(sa.or_(t.c.customer_id.in_(ids),
                                                               t.c.related_customer_id.in_(ids)))
                                     .returning(t.c.relationship_id, t.c.customer_id, t.c.related_customer_id,
                                                t.c.type, t.c.mirror_id))
        return [Relationship(customer_id=r.customer_id, related_customer_id=r.related_customer_id, type=r.type,
                             relationship_id=r.relationship_id, mirror_id=r.mirror_id) for r in rows]

    async def erase_consents(self, uow: UnitOfWork, ids: Sequence[str]) -> int:
        records = await uow.execute(sa.delete(consent_record).where(sa.or_(
            consent_record.c.customer_id.in_(ids), consent_record.c.origin_customer_id.in_(ids))))
        preferences = await uow.execute(sa.delete(contact_preference)
                                            .where(contact_preference.c.customer_id.in_(ids)))
        return int(records.rowcount or 0) + int(preferences.rowcount or 0)

    async def delete_holdings(self, uow: UnitOfWork, ids: Sequence[str]) -> int:
        result = await uow.execute(sa.delete(holding).where(holding.c.customer_id.in_(ids)))
        return int(result.rowcount or 0)

    async def erase_derived(self, uow: UnitOfWork, ids: Sequence[str], classes: Iterable[DataClass]) -> int:
        """Derived features: the age goes with the birth date (IDENTITY); the rest are the financial
        aggregates the tombstone keeps, deleted only with FINANCIAL."""
        wanted = set(classes)
        touched = 0
        if DataClass.FINANCIAL in wanted:
            for table in (customer_aum_history, customer_feature):
                touched += int((await uow.execute(sa.delete(table).where(table.c.customer_id.in_(ids)))).rowcount
                               or 0)
        elif DataClass.IDENTITY in wanted:
            touched += int((await uow.execute(sa.update(customer_feature).where(
                customer_feature.c.customer_id.in_(ids), customer_feature.c.age_years.is_not(None))
                .values(age_years=None))).rowcount or 0)
        return touched

    async def anonymise_events(self, uow: UnitOfWork, ids: Sequence[str], classes: Iterable[DataClass]) -> int:
        """Drop the free-form properties of the customers' events of these classes."""
        condition = _event_classes(classes)
        if condition is None:
            return 0
        result = await uow.execute(sa.update(customer_event).where(
            customer_event.c.customer_id.in_(ids), condition, customer_event.c.properties.is_not(None))
            .values(properties=None))
        return int(result.rowcount or 0)

    async def delete_events(self, uow: UnitOfWork, ids: Sequence[str], classes: Iterable[DataClass]) -> int:
        """Delete the customers' events of these classes, and their ids from the ledger."""
        condition = _event_classes(classes)
        if condition is None:
            return 0
        deleted = (await uow.execute(sa.delete(customer_event)
                                         .where(customer_event.c.customer_id.in_(ids), condition)
                                         .returning(customer_event.c.event_id))).scalars().all()
        await _forget_event_ids(uow, deleted)
        return len(deleted)

    async def scrub_merges(self, uow: UnitOfWork, ids: Sequence[str], classes: Iterable[DataClass]) -> int:
        """Remove the erased classes' values from the undo data of every merge the customers were in."""
        m = customer_merge
        rows = (await uow.execute(sa.select(m.c.merge_id, m.c.undo).where(
            sa.or_(m.c.survivor_id.in_(ids), m.c.source_id.in_(ids))).with_for_update())).all()
        changed = 0
        for row in rows:
            scrubbed = rules.scrub_merge_undo(row.undo, classes)
            if scrubbed != row.undo:
                await uow.execute(sa.update(m).where(m.c.merge_id == row.merge_id).values(undo=scrubbed))
                changed += 1
        return changed

    async def redact_feed(self, uow: UnitOfWork, ids: Sequence[str]) -> int:
        """Empty the payloads of earlier change events about the customers (their type stays), so a
        consumer replaying the retained feed finds no personal data either."""
        o = outbox_event
        rows = (await uow.execute(sa.select(o.c.cursor, o.c.payload).where(_about(o.c.resource_name, ids)))).all()
        updates = []
        for row in rows:
            packed = any_pb2.Any()
            packed.ParseFromString(row.payload)
            if packed.value:
                updates.append({"c": row.cursor, "p": any_pb2.Any(type_url=packed.type_url).SerializeToString()})
        if updates:
            await uow.execute(sa.update(o).where(o.c.cursor == sa.bindparam("c"))
                                  .values(payload=sa.bindparam("p")), updates)
        return len(updates)

    # --- the evidence ----------------------------------------------------------------------------

    async def save_report(self, uow: UnitOfWork, erasure: ErasureReport, *, erased_by: str,
                          case_reference: str) -> None:
        await uow.execute(sa.insert(customer_erasure).values(
            customer_id=erasure.customer_id, erased_at=erasure.erase_time, erased_by=erased_by,
            case_reference=case_reference, report=rules.report_to_json(erasure)))

    async def stored_report(self, uow: UnitOfWork, customer_id: str) -> ErasureReport | None:
        row = (await uow.execute(sa.select(customer_erasure).where(
            customer_erasure.c.customer_id == customer_id))).first()
        if row is None:
            return None
        report = row.report if not isinstance(row.report, str) else json.loads(row.report)
        return rules.report_from_json(customer_id, row.erased_at, report)

    @staticmethod
    async def now(uow: UnitOfWork) -> datetime:
        """The transaction's time: what the erasure's evidence and history carry."""
        value = await uow.scalar(sa.select(sa.func.now()))
        assert value is not None
        return value


async def _count(uow: UnitOfWork, table: sa.Table, condition: sa.ColumnElement[bool]) -> int:
    return int(await uow.scalar(sa.select(sa.func.count()).select_from(table).where(condition)) or 0)


def _event_classes(classes: Iterable[DataClass]) -> sa.ColumnElement[bool] | None:
    wanted = set(classes) & rules.EVENT_CLASSES
    if not wanted:
        return None
    if wanted == rules.EVENT_CLASSES:
        return sa.true()
    is_transaction = customer_event.c.event_type.in_(_TX_TYPES)
    return is_transaction if DataClass.TRANSACTION in wanted else sa.not_(is_transaction)


async def _forget_event_ids(uow: UnitOfWork, event_ids: Sequence[str]) -> None:
    """Deleted events leave the id ledger too (a resent copy is then refused as too old)."""
    if event_ids:
        await uow.execute(sa.text("DELETE FROM customer_event_id WHERE event_id = ANY(:ids)"),
                              {"ids": list(event_ids)})
