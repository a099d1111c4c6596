"""The erasure path, inside the caller's unit of work: EraseCustomer takes it for every class, the
retention purge for the classes whose period ended. See `rules.py` for what each class holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.attributes.model import ENCRYPTED_CLASSES, DataClass
from crm_profile.customers.model import Customer
from crm_profile.history.rules import ChangeSource
from crm_profile.history.service import FieldHistory
from crm_profile.privacy.data_subject import rules
from crm_profile.privacy.data_subject.model import ErasureSpec
from crm_profile.privacy.data_subject.repository import ErasureRepository
from crm_profile.relationships.model import Relationship


@dataclass(frozen=True)
class Erased:
    """What a pass removed that the change feed must announce."""

    customer_ids: tuple[str, ...]
    relationships: tuple[Relationship, ...] = ()
    values: int = 0


class CustomerEraser:
    def __init__(self, *, repository: ErasureRepository, history: FieldHistory) -> None:
        self._repository = repository
        self._history = history

    async def erase(
        self, session: AsyncConnection, *, customers: Sequence[Customer], spec: ErasureSpec,
        attribute_classes: Mapping[str, DataClass], actor: str, source: ChangeSource, today: date,
    ) -> Erased:
        """Erase per `spec` from `customers` (a customer and those merged into it, locked by the
        caller). Field history records the erasure first, then loses the erased values too."""
        repository = self._repository
        ids = [c.customer_id for c in customers]
        on_record = bool(spec.erase & rules.RECORD_CLASSES) or spec.tombstone
        for customer in customers if on_record else ():
            after = rules.erased_customer(customer, spec.erase, attribute_classes, today=today,
                                          tombstone=spec.tombstone)
            await self._history.record(uow=session, before=customer, after=after, actor=actor, source=source)
            await repository.blank_customer(session, customer.customer_id, spec.erase, tombstone=spec.tombstone,
                                            today=today)
        values = await repository.erase_attributes(session, ids, spec.erase)
        values += await repository.erase_history(session, ids, spec.erase, attribute_classes)
        if spec.tombstone and spec.erase >= ENCRYPTED_CLASSES:
            for customer_id in ids:  # every sealed history value, whatever its field
                values += await self._history.erase(uow=session, customer_id=customer_id)
        if DataClass.IDENTITY in spec.erase:
            values += await repository.erase_identity_links(session, ids)
        relationships: list[Relationship] = []
        if DataClass.DEMOGRAPHIC in spec.erase:
            relationships = await repository.erase_relationships(session, ids)
        if DataClass.CONSENT in spec.erase:
            values += await repository.erase_consents(session, ids)
        if DataClass.FINANCIAL in spec.erase:
            values += await repository.delete_holdings(session, ids)
        values += await repository.erase_derived(session, ids, spec.erase)
        values += await repository.anonymise_events(session, ids, spec.anonymise_events)
        values += await repository.delete_events(session, ids, spec.delete_events)
        await repository.scrub_merges(session, ids, spec.erase)
        if spec.tombstone:
            await repository.redact_feed(session, ids)
        return Erased(tuple(ids), tuple(relationships), values)
