"""The erasure path, inside the caller's unit of work: EraseCustomer takes it for every class, the
retention purge for the classes whose period ended. Like every service function it never opens or
commits a transaction (crmkit.db's rule). See `rules.py` for what each class holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from crm_profile.attributes.model import ENCRYPTED_CLASSES, DataClass
from crm_profile.customers.model import Customer
from crm_profile.history.model import ChangeSource
from crm_profile.history.service import FieldHistory
from crm_profile.privacy.data_subject import rules
from crm_profile.privacy.data_subject.model import ErasureSpec
from crm_profile.privacy.data_subject.repository import ErasureRepository
from crm_profile.relationships.model import Relationship
from crmkit.db import UnitOfWork


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
        self, *, uow: UnitOfWork, customers: Sequence[Customer], spec: ErasureSpec,
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
            await self._history.record(uow=uow, before=customer, after=after, actor=actor, source=source)
            await repository.blank_customer(uow, customer.customer_id, spec.erase, tombstone=spec.tombstone,
                                            today=today)
        values = await repository.erase_attributes(uow, ids, spec.erase)
        values += await repository.erase_history(uow, ids, spec.erase, attribute_classes)
        if spec.tombstone and spec.erase >= ENCRYPTED_CLASSES:
            for customer_id in ids:  # every sealed history value, whatever its field
                values += await self._history.erase(uow=uow, customer_id=customer_id)
        if DataClass.IDENTITY in spec.erase:
            values += await repository.erase_identity_links(uow, ids)
        relationships: list[Relationship] = []
        if DataClass.DEMOGRAPHIC in spec.erase:
            relationships = await repository.erase_relationships(uow, ids)
        if DataClass.CONSENT in spec.erase:
            values += await repository.erase_consents(uow, ids)
        if DataClass.FINANCIAL in spec.erase:
            values += await repository.delete_holdings(uow, ids)
        values += await repository.erase_derived(uow, ids, spec.erase)
        values += await repository.anonymise_events(uow, ids, spec.anonymise_events)
        values += await repository.delete_events(uow, ids, spec.delete_events)
        await repository.scrub_merges(uow, ids, spec.erase)
        if spec.tombstone:
            await repository.redact_feed(uow, ids)
        return Erased(tuple(ids), tuple(relationships), values)
