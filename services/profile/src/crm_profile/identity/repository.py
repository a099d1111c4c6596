"""All SQL of identity resolution. Never commits: the caller's unit of work does."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.consents.rules import ConsentConflict
from crm_profile.customers.model import PERSONAL_FIELDS, Customer
from crm_profile.customers.tables import customer as c
from crm_profile.customers.tables import customer_external_id as x
from crm_profile.customers.vault import PersonalDataVault
from crm_profile.history import rules as history_rules
from crm_profile.history.tables import field_change as fc
from crm_profile.history.tables import field_confirmation as fcf
from crm_profile.identity.model import (
    KEY_EMAIL,
    KEY_ID_DOCUMENT,
    KEY_MOBILE_PHONE,
    FieldLineage,
    FieldSimilarity,
    FuzzyComparison,
    FuzzyCriteria,
    MatchCandidate,
    MatchRule,
    Merge,
    SurvivorshipRule,
)
from crm_profile.identity.rules import ValueOrigin
from crm_profile.identity.tables import customer_merge as m
from crm_profile.identity.tables import match_candidate as mc
from crm_profile.identity.tables import match_name_key as nk
from crm_profile.identity.tables import match_rule as mr
from crm_profile.identity.tables import matcher_state as ms
from crm_profile.tables import outbox_event
from crmkit.outbox import START, Position, Xid8, encode_cursor, parse_cursor, read_visible, visible_below

ACTIVE = 1

# --- match rules -----------------------------------------------------------------------------


def _criteria_to_json(rule: MatchRule) -> dict[str, Any]:
    if rule.exact_key is not None:
        return {"exact": {"key": rule.exact_key}}
    assert rule.fuzzy is not None
    return {"fuzzy": {
        "comparisons": [dataclasses.asdict(x) for x in rule.fuzzy.comparisons],
        "review_threshold": rule.fuzzy.review_threshold, "auto_merge_threshold": rule.fuzzy.auto_merge_threshold,
    }}


def _rule_from_row(row: RowMapping) -> MatchRule:
    criteria = row["criteria"]
    fuzzy = None
    if "fuzzy" in criteria:
        f = criteria["fuzzy"]
        fuzzy = FuzzyCriteria(comparisons=tuple(FuzzyComparison(**x) for x in f["comparisons"]),
                              review_threshold=f["review_threshold"], auto_merge_threshold=f["auto_merge_threshold"])
    return MatchRule(
        match_rule_id=row["match_rule_id"], display_name=row["display_name"], description=row["description"],
        disabled=row["disabled"], priority=row["priority"],
        exact_key=criteria["exact"]["key"] if "exact" in criteria else None, fuzzy=fuzzy, action=row["action"],
        survivorship_rules=tuple(SurvivorshipRule(x["field"], x["strategy"], tuple(x["source_priority"]))
                                 for x in row["survivorship_rules"]),
        version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _rule_values(rule: MatchRule) -> dict[str, Any]:
    return {
        "display_name": rule.display_name, "description": rule.description, "disabled": rule.disabled,
        "priority": rule.priority, "criteria": _criteria_to_json(rule), "action": rule.action,
        "survivorship_rules": [{"field": s.field, "strategy": s.strategy, "source_priority": list(s.source_priority)}
                               for s in rule.survivorship_rules],
    }


class MatchRuleRepository:
    async def insert(self, session: AsyncConnection, rule: MatchRule) -> MatchRule | None:
        """Insert; None when the id is taken."""
        row = (await session.execute(
            pg.insert(mr).values(match_rule_id=rule.match_rule_id, **_rule_values(rule))
            .on_conflict_do_nothing(index_elements=[mr.c.match_rule_id]).returning(mr))).first()
        return _rule_from_row(row._mapping) if row is not None else None

    async def get(self, session: AsyncConnection, match_rule_id: str, *, for_update: bool = False) -> MatchRule | None:
        query = sa.select(mr).where(mr.c.match_rule_id == match_rule_id)
        if for_update:
            query = query.with_for_update()
        row = (await session.execute(query)).first()
        return _rule_from_row(row._mapping) if row is not None else None

    async def page(self, session: AsyncConnection, *, after: tuple[int, str] | None, limit: int) -> list[MatchRule]:
        query = sa.select(mr).order_by(mr.c.priority, mr.c.match_rule_id).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(mr.c.priority, mr.c.match_rule_id) > sa.tuple_(*after))
        return [_rule_from_row(row._mapping) for row in (await session.execute(query)).all()]

    async def any_fuzzy(self, session: AsyncConnection) -> bool:
        """Whether any fuzzy rule exists, enabled or not (FindMatches may name disabled ones)."""
        return bool(await session.scalar(sa.select(sa.exists().where(mr.c.criteria.has_key("fuzzy")))))

    async def in_force(self, session: AsyncConnection, match_rule_ids: Sequence[str] = ()) -> list[MatchRule]:
        """The named rules (disabled ones too), or every enabled rule; in priority order."""
        query = sa.select(mr).order_by(mr.c.priority, mr.c.match_rule_id)
        query = query.where(mr.c.match_rule_id.in_(list(match_rule_ids))) if match_rule_ids else query.where(
            mr.c.disabled.is_(False))
        return [_rule_from_row(row._mapping) for row in (await session.execute(query)).all()]

    async def update(self, session: AsyncConnection, rule: MatchRule) -> MatchRule:
        row = (await session.execute(
            sa.update(mr).where(mr.c.match_rule_id == rule.match_rule_id)
            .values(**_rule_values(rule), version=mr.c.version + 1, updated_at=sa.func.now()).returning(mr))).one()
        return _rule_from_row(row._mapping)

    async def delete(self, session: AsyncConnection, match_rule_id: str) -> None:
        await session.execute(sa.delete(mr).where(mr.c.match_rule_id == match_rule_id))


# --- the customers a rule compares ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PoolEntry:
    """A customer in a fuzzy rule's block: just what scoring needs, decrypted in memory."""

    customer_id: str
    full_name: str
    birth_date: date | None
    address: dict[str, Any]


class MatchRepository:
    """Queries over the customer table by blind index and blocking key (read only), and the name keys."""

    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault

    def _live(self, customer_type: int, exclude: str) -> list[sa.ColumnElement[bool]]:
        return [c.c.customer_type == customer_type, c.c.state == ACTIVE, c.c.customer_id != exclude]

    async def exact(self, session: AsyncConnection, subject: Customer, key: int, *, limit: int) -> list[str]:
        """Live customers of the subject's type sharing the key's blind index."""
        where = self._live(subject.customer_type, subject.customer_id)
        if key == KEY_ID_DOCUMENT and subject.id_number:
            where += [c.c.id_number_index == self._vault.index_of(subject.id_number, kind="id_number"),
                      c.c.id_type == subject.id_type, c.c.id_issuing_country == subject.id_issuing_country]
        elif key == KEY_MOBILE_PHONE and subject.mobile_phone:
            where.append(c.c.mobile_phone_index == self._vault.index_of(subject.mobile_phone, kind="mobile_phone"))
        elif key == KEY_EMAIL and subject.email:
            where.append(c.c.email_index == self._vault.index_of(subject.email, kind="email"))
        else:
            return []
        query = sa.select(c.c.customer_id).where(*where).order_by(c.c.customer_id).limit(limit)
        return list((await session.execute(query)).scalars())

    async def by_external_ids(self, session: AsyncConnection, subject: Customer, external_ids: Iterable[Any], *,
                              limit: int) -> list[str]:
        """Live customers of the subject's type holding one of its external ids."""
        pairs = [(e.source_system, e.id) for e in external_ids]
        if not pairs:
            return []
        query = (sa.select(x.c.customer_id).distinct().join(c, c.c.customer_id == x.c.customer_id)
                 .where(sa.tuple_(x.c.source_system, x.c.external_id).in_(pairs),
                        *self._live(subject.customer_type, subject.customer_id))
                 .order_by(x.c.customer_id).limit(limit))
        return list((await session.execute(query)).scalars())

    async def by_external_id(self, session: AsyncConnection, external_id: Any) -> list[str]:
        """Customers (any state) holding an external id."""
        query = sa.select(x.c.customer_id).where(x.c.source_system == external_id.source_system,
                                                 x.c.external_id == external_id.id)
        return list((await session.execute(query)).scalars())

    async def pool(self, session: AsyncConnection, subject: Customer, *, birth_dates: Iterable[date],
                   name_key: bytes | None, limit: int) -> list[PoolEntry]:
        """Live customers of the subject's type sharing its name key or born on one of
        `birth_dates`, at most `limit`, the likeliest blocks first: the name key, then the
        subject's own birth date, then the other dates (its typo variants). A large bank has
        thousands of customers born on some day near anyone's birthday; cut in id order, the pool
        would drop a same-name candidate at random."""
        dates = set(birth_dates)
        blocks: list[sa.ColumnElement[bool]] = []
        if name_key is not None:
            blocks.append(c.c.customer_id.in_(sa.select(nk.c.customer_id).where(nk.c.name_key == name_key)))
        if subject.birth_date is not None and subject.birth_date in dates:
            blocks.append(c.c.birth_date == subject.birth_date)
            dates.discard(subject.birth_date)
        if dates:
            blocks.append(c.c.birth_date.in_(sorted(dates)))
        entries: dict[str, PoolEntry] = {}
        for block in blocks:
            if len(entries) >= limit:
                break
            query = (sa.select(c.c.customer_id, c.c.birth_date, c.c.full_name_sealed, c.c.id_number_sealed,
                               c.c.mobile_phone_sealed, c.c.email_sealed, c.c.address_sealed)
                     .where(*self._live(subject.customer_type, subject.customer_id), block)
                     .order_by(c.c.customer_id).limit(limit - len(entries)))
            if entries:
                query = query.where(c.c.customer_id.not_in(list(entries)))
            for row in (await session.execute(query)).all():
                opened = self._vault.open(row._mapping)
                entries[row.customer_id] = PoolEntry(row.customer_id, opened["full_name"], row.birth_date,
                                                     opened["address"])
        return list(entries.values())

    async def states(self, session: AsyncConnection, customer_ids: Iterable[str]) -> dict[str, tuple[int, str]]:
        """(state, merged_into) of each customer."""
        rows = await session.execute(sa.select(c.c.customer_id, c.c.state, c.c.merged_into)
                                     .where(c.c.customer_id.in_(list(customer_ids))))
        return {row.customer_id: (row.state, row.merged_into) for row in rows}

    async def by_identifier(self, session: AsyncConnection, *, id_type: int = 0, id_number: str = "",
                            issuing_country: str = "", mobile_phone: str = "", email: str = "",
                            limit: int) -> list[str]:
        """Customers (any state) holding one identifier, through its blind index."""
        if id_number:
            where = [c.c.id_number_index == self._vault.index_of(id_number, kind="id_number"), c.c.id_type == id_type]
            if issuing_country:
                where.append(c.c.id_issuing_country == issuing_country)
        elif mobile_phone:
            where = [c.c.mobile_phone_index == self._vault.index_of(mobile_phone, kind="mobile_phone")]
        else:
            where = [c.c.email_index == self._vault.index_of(email, kind="email")]
        query = sa.select(c.c.customer_id).where(*where).order_by(c.c.customer_id).limit(limit)
        return list((await session.execute(query)).scalars())

    async def names(self, session: AsyncConnection, *, customer_ids: Sequence[str] | None = None,
                    after: str | None = None, limit: int = 0) -> list[tuple[str, int, str]]:
        """(customer id, state, full name) of the given customers, or of a page in id order.

        The rows are share-locked, in id order, until the caller's transaction ends: the name keys
        the caller then writes follow the customers' committed state, and a writer that locks
        customers and then touches their name keys (a merge, an erasure) is waited for rather
        than met head-on in a deadlock."""
        query = (sa.select(c.c.customer_id, c.c.state, c.c.full_name_sealed).order_by(c.c.customer_id)
                 .with_for_update(read=True))
        if customer_ids is not None:
            query = query.where(c.c.customer_id.in_(list(customer_ids)))
        else:
            query = query.where(c.c.customer_id > (after or "")).limit(limit)
        found = []
        for row in (await session.execute(query)).all():
            opened = self._vault.open({"customer_id": row.customer_id, "full_name_sealed": row.full_name_sealed,
                                       "id_number_sealed": None, "mobile_phone_sealed": None, "email_sealed": None,
                                       "address_sealed": None})
            found.append((row.customer_id, row.state, opened["full_name"]))
        return found

    async def save_name_keys(self, session: AsyncConnection, keys: Mapping[str, bytes]) -> None:
        if keys:
            statement = pg.insert(nk).values([{"customer_id": k, "name_key": v} for k, v in sorted(keys.items())])
            await session.execute(statement.on_conflict_do_update(
                index_elements=[nk.c.customer_id], set_={"name_key": statement.excluded.name_key}))

    async def drop_name_keys(self, session: AsyncConnection, customer_ids: Iterable[str]) -> None:
        if ids := list(customer_ids):
            await session.execute(sa.delete(nk).where(nk.c.customer_id.in_(ids)))


# --- candidates ------------------------------------------------------------------------------


def _similarities_to_json(similarities: Iterable[FieldSimilarity]) -> list[dict[str, Any]]:
    return [{"field": s.field, "similarity": s.similarity} for s in similarities]


def _candidate_from_row(row: RowMapping) -> MatchCandidate:
    return MatchCandidate(
        candidate_id=row["match_candidate_id"], customer_ids=(row["customer_a"], row["customer_b"]),
        match_rule_id=row["match_rule_id"], score=row["score"],
        similarities=tuple(FieldSimilarity(s["field"], s["similarity"]) for s in row["similarities"]),
        state=row["state"], review_conflict=row["review_conflict"], created_at=row["created_at"],
        resolved_at=row["resolved_at"], resolved_by=row["resolved_by"], merge_name=row["merge_name"],
    )


class CandidateRepository:
    async def file(self, session: AsyncConnection, candidate: MatchCandidate) -> MatchCandidate | None:
        """Insert a pending candidate; None when the pair is pending or dismissed already."""
        row = (await session.execute(pg.insert(mc).values(
            match_candidate_id=candidate.candidate_id, customer_a=candidate.customer_ids[0],
            customer_b=candidate.customer_ids[1], match_rule_id=candidate.match_rule_id, score=candidate.score,
            similarities=_similarities_to_json(candidate.similarities), state=candidate.state,
            review_conflict=candidate.review_conflict,
        ).on_conflict_do_nothing().returning(mc))).first()
        return _candidate_from_row(row._mapping) if row is not None else None

    async def get(self, session: AsyncConnection, candidate_id: uuid.UUID, *,
                  for_update: bool = False) -> MatchCandidate | None:
        query = sa.select(mc).where(mc.c.match_candidate_id == candidate_id)
        if for_update:
            query = query.with_for_update()
        row = (await session.execute(query)).first()
        return _candidate_from_row(row._mapping) if row is not None else None

    async def open_for(self, session: AsyncConnection, customer_id: str,
                       others: Iterable[str]) -> dict[str, MatchCandidate]:
        """The pending or dismissed candidate of each pair (customer, other), by other."""
        others = list(others)
        if not others:
            return {}
        query = sa.select(mc).where(mc.c.state.in_([1, 3]), sa.or_(
            sa.and_(mc.c.customer_a == customer_id, mc.c.customer_b.in_(others)),
            sa.and_(mc.c.customer_b == customer_id, mc.c.customer_a.in_(others))))
        found = {}
        for row in (await session.execute(query)).all():
            candidate = _candidate_from_row(row._mapping)
            a, b = candidate.customer_ids
            found[b if a == customer_id else a] = candidate
        return found

    async def page(self, session: AsyncConnection, *, state: int, customer_id: str, match_rule_id: str,
                   min_score: float, after: tuple[float, str, str] | None, limit: int) -> list[MatchCandidate]:
        query = (sa.select(mc).where(mc.c.state == state)
                 .order_by(mc.c.score.desc(), mc.c.created_at, mc.c.match_candidate_id).limit(limit))
        if customer_id:
            query = query.where(sa.or_(mc.c.customer_a == customer_id, mc.c.customer_b == customer_id))
        if match_rule_id:
            query = query.where(mc.c.match_rule_id == match_rule_id)
        if min_score:
            query = query.where(mc.c.score >= min_score)
        if after is not None:
            score, created, candidate_id = after
            created_at = datetime.fromisoformat(created)
            query = query.where(sa.or_(
                mc.c.score < score,
                sa.and_(mc.c.score == score,
                        sa.tuple_(mc.c.created_at, mc.c.match_candidate_id) > sa.tuple_(
                            sa.literal(created_at, sa.DateTime(timezone=True)),
                            sa.literal(uuid.UUID(candidate_id), pg.UUID(as_uuid=True))))))
        return [_candidate_from_row(row._mapping) for row in (await session.execute(query)).all()]

    async def resolve(self, session: AsyncConnection, candidate_id: uuid.UUID, *, state: int, by: str,
                      merge_name: str = "", reason: str = "") -> MatchCandidate:
        row = (await session.execute(sa.update(mc).where(mc.c.match_candidate_id == candidate_id).values(
            state=state, resolved_at=sa.func.now(), resolved_by=by, merge_name=merge_name, dismiss_reason=reason,
        ).returning(mc))).one()
        return _candidate_from_row(row._mapping)


# --- merges ----------------------------------------------------------------------------------

_SNAPSHOT_SKIP = frozenset({*PERSONAL_FIELDS, "customer_id", "attributes", "external_ids", "version", "created_at",
                            "updated_at"})


class MergeRepository:
    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault

    async def provenance(self, session: AsyncConnection, customer_id: str) -> dict[str, ValueOrigin]:
        """When and from which system each field's current value came, from the field history,
        by merge field path (`id_document.number` counts for `id_document`)."""
        latest = (await session.execute(
            sa.select(fc.c.field, fc.c.changed_at, fc.c.source_system, fc.c.new_text).ext(pg.distinct_on(fc.c.field))
            .where(fc.c.customer_id == customer_id).order_by(fc.c.field, fc.c.field_change_id.desc()))).all()
        confirmed = (await session.execute(sa.select(fcf.c.field, fcf.c.confirmed_at)
                                           .where(fcf.c.customer_id == customer_id))).all()
        found: dict[str, ValueOrigin] = {}
        created = next((row for row in latest if row.field == history_rules.RECORD), None)
        for row in latest:
            if row.field == history_rules.RECORD:
                continue
            path = row.field.split(".", 1)[0]
            current = found.get(path)
            if current is None or (current.changed_at or row.changed_at) <= row.changed_at:
                found[path] = ValueOrigin(row.changed_at, None, row.source_system)
        if created is not None:  # a value set at creation and not changed since: the creation's (which confirms it)
            for field in history_rules.created_paths(created.new_text or ""):
                found.setdefault(field.split(".", 1)[0],
                                 ValueOrigin(created.changed_at, created.changed_at, created.source_system))
        for confirmation in confirmed:
            path = confirmation.field.split(".", 1)[0]
            current = found.get(path, ValueOrigin())
            latest = max(filter(None, (current.confirmed_at, confirmation.confirmed_at)))
            found[path] = dataclasses.replace(current, confirmed_at=latest)
        return found

    def snapshot(self, customer: Customer) -> dict[str, Any]:
        """A customer's values as stored JSON: personal values sealed exactly as in its row."""
        plain: dict[str, Any] = {}
        for f in dataclasses.fields(Customer):
            if f.name in _SNAPSHOT_SKIP:
                continue
            value = getattr(customer, f.name)
            plain[f.name] = {"date": value.isoformat()} if isinstance(value, date) else value
        sealed = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v
                  for k, v in self._vault.seal(customer).items() if k.endswith("_sealed")}
        return {"plain": plain, "sealed": sealed}

    def restore(self, customer: Customer, snapshot: Mapping[str, Any]) -> Customer:
        """`customer` with the values of a snapshot of it."""
        plain: dict[str, Any] = {k: date.fromisoformat(v["date"]) if isinstance(v, dict) and "date" in v else v
                 for k, v in snapshot["plain"].items() if hasattr(customer, k)}
        sealed = {k: base64.b64decode(v) if isinstance(v, str) else v for k, v in snapshot["sealed"].items()}
        opened = self._vault.open({"customer_id": customer.customer_id, **sealed})
        return dataclasses.replace(customer, **plain, **opened)

    async def insert(self, session: AsyncConnection, merge: Merge) -> Merge:
        row = (await session.execute(sa.insert(m).values(
            merge_id=merge.merge_id, survivor_id=merge.survivor_id, source_id=merge.source_id, state=merge.state,
            field_lineage=[_lineage_to_json(x) for x in merge.field_lineage],
            consent_conflicts=[dataclasses.asdict(x) for x in merge.consent_conflicts],
            review_required=merge.review_required, review_reasons=list(merge.review_reasons),
            match_candidate_id=merge.match_candidate_id, match_rule_id=merge.match_rule_id,
            merged_by=merge.merged_by, undo=merge.undo,
        ).returning(m))).one()
        return _merge_from_row(row._mapping)

    async def get(self, session: AsyncConnection, merge_id: uuid.UUID) -> Merge | None:
        row = (await session.execute(sa.select(m).where(m.c.merge_id == merge_id))).first()
        return _merge_from_row(row._mapping) if row is not None else None

    async def in_force_for_source(self, session: AsyncConnection, source_id: str) -> Merge | None:
        row = (await session.execute(sa.select(m).where(m.c.source_id == source_id, m.c.state == 1)
                                     .with_for_update())).first()
        return _merge_from_row(row._mapping) if row is not None else None

    async def last_undone_for_source(self, session: AsyncConnection, source_id: str) -> Merge | None:
        row = (await session.execute(sa.select(m).where(m.c.source_id == source_id, m.c.state == 2)
                                     .order_by(m.c.unmerged_at.desc()).limit(1))).first()
        return _merge_from_row(row._mapping) if row is not None else None

    async def mark_undone(self, session: AsyncConnection, merge_id: uuid.UUID, *, by: str) -> Merge:
        row = (await session.execute(sa.update(m).where(m.c.merge_id == merge_id).values(
            state=2, unmerged_by=by, unmerged_at=sa.func.now()).returning(m))).one()
        return _merge_from_row(row._mapping)

    async def pairs_undone(self, session: AsyncConnection, a: str, b: str) -> bool:
        """Whether a merge of these two customers (either way round) was ever undone."""
        found = await session.scalar(sa.select(sa.func.count()).where(m.c.state == 2, sa.or_(
            sa.and_(m.c.survivor_id == a, m.c.source_id == b), sa.and_(m.c.survivor_id == b, m.c.source_id == a))))
        return bool(found)

    async def page(self, session: AsyncConnection, *, survivor_id: str | None, review_required: bool, state: int,
                   after: tuple[str, str] | None, limit: int) -> list[Merge]:
        query = sa.select(m).order_by(m.c.merged_at.desc(), m.c.merge_id.desc()).limit(limit)
        if survivor_id is not None:
            query = query.where(m.c.survivor_id == survivor_id)
        if review_required:
            query = query.where(m.c.review_required.is_(True))
        if state:
            query = query.where(m.c.state == state)
        if after is not None:
            merged_at, merge_id = after
            query = query.where(sa.tuple_(m.c.merged_at, m.c.merge_id) < sa.tuple_(
                sa.literal(datetime.fromisoformat(merged_at), sa.DateTime(timezone=True)),
                sa.literal(uuid.UUID(merge_id), pg.UUID(as_uuid=True))))
        return [_merge_from_row(row._mapping) for row in (await session.execute(query)).all()]


def _lineage_to_json(lineage: FieldLineage) -> dict[str, Any]:
    return {"field": lineage.field, "chosen_from": lineage.chosen_from, "strategy": lineage.strategy,
            "source_system": lineage.source_system,
            "value_time": lineage.value_time.isoformat() if lineage.value_time else None}


def _merge_from_row(row: RowMapping) -> Merge:
    return Merge(
        merge_id=row["merge_id"], survivor_id=row["survivor_id"], source_id=row["source_id"], state=row["state"],
        field_lineage=tuple(FieldLineage(
            field=x["field"], chosen_from=x["chosen_from"], strategy=x["strategy"], source_system=x["source_system"],
            value_time=datetime.fromisoformat(x["value_time"]) if x["value_time"] else None)
            for x in row["field_lineage"]),
        consent_conflicts=tuple(ConsentConflict(**x) for x in row["consent_conflicts"]),
        review_reasons=tuple(row["review_reasons"]), match_candidate_id=row["match_candidate_id"],
        match_rule_id=row["match_rule_id"], merged_by=row["merged_by"], merged_at=row["merged_at"],
        unmerged_by=row["unmerged_by"], unmerged_at=row["unmerged_at"], undo=dict(row["undo"]),
    )


# --- the matcher's position in the change feed -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class MatcherPosition:
    cursor: Position  # the change feed read up to here (stored as the feed's opaque cursor text)
    name_keys_ready: bool  # every customer's name key is current
    name_keys_after: str  # the backfill of name keys has reached this customer id


class MatcherStateRepository:
    async def claim(self, session: AsyncConnection) -> MatcherPosition | None:
        """The matcher's position, locked for this transaction; None while another replica holds it."""
        query = sa.select(ms.c.cursor, ms.c.name_keys_ready, ms.c.name_keys_after).with_for_update(skip_locked=True)
        row = (await session.execute(query)).first()
        if row is None:
            await session.execute(pg.insert(ms).values(singleton=True, cursor="").on_conflict_do_nothing())
            row = (await session.execute(query)).first()
        if row is None:
            return None
        return MatcherPosition(parse_cursor(row.cursor), row.name_keys_ready, row.name_keys_after)

    async def save(self, session: AsyncConnection, position: MatcherPosition) -> None:
        await session.execute(sa.update(ms).values(cursor=encode_cursor(position.cursor),
                                                   name_keys_ready=position.name_keys_ready,
                                                   name_keys_after=position.name_keys_after))

    async def customer_changes(self, session: AsyncConnection, *, after: Position, limit: int,
                               resource_type: str) -> tuple[list[tuple[Position, str, int]], Position]:
        """(position, resource name, change type) of the events of one type after `after`, and the
        new position (past every event read, whatever its type).

        Only events no transaction still running can precede are read (`crmkit.outbox.read_visible`),
        so a slow transaction that commits an event after later ones were read is not passed over.
        The kit reads the visibility bound in one statement and the rows in the next: it holds in
        this READ COMMITTED unit of work (each statement its own snapshot) as long as nothing
        before it in the transaction read `pg_stat_activity`, which is cached per transaction.
        """
        rows = await read_visible(session, outbox_event, after=after, limit=limit)
        if not rows:
            return [], after
        changes = [(Position(row.xid_number, row.cursor), row.resource_name, row.change_type) for row in rows
                   if row.resource_type == resource_type]
        return changes, Position(rows[-1].xid_number, rows[-1].cursor)

    async def tail(self, session: AsyncConnection) -> Position:
        """The last event no transaction still running can precede (where skipping the feed stops)."""
        bound = await visible_below(session)
        e = outbox_event
        row = (await session.execute(
            sa.select(sa.cast(sa.cast(e.c.xid, sa.Text), sa.BigInteger), e.c.cursor)
            .where(e.c.xid < sa.cast(sa.cast(str(bound), sa.Text), Xid8))
            .order_by(e.c.xid.desc(), e.c.cursor.desc()).limit(1))).first()
        return Position(int(row[0]), int(row[1])) if row is not None else START
