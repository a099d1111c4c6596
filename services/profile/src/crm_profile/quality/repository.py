# ruff: noqa: S608 - statements are assembled from this module's constants; values are bound parameters.
"""All SQL of the data-quality report: aggregates over every active customer. Never commits.

What it costs, measured on a million synthetic customers and 900,000 attribute values (a shared
two-core machine with other work running, so upper bounds):

- core fields: one sequential scan of `customer` with one FILTER aggregate per field and rule,
  grouped by source system only (the all-sources row is summed here, not sorted by GROUPING
  SETS): about 3 s, against 0.35 s for a bare scan grouping by source in the same run -- the
  difference is the ~35 aggregates evaluated per row;
- duplicates: per blind index, an index-only scan in index order finds the values held more than
  once (no heap, no hash table), then their active holders are probed through the same index:
  0.6 to 1.3 s each;
- attributes: one scan of `customer_attribute` joined to `customer`, one FILTER per declared
  rule: about 1.5 s.

So a report costs 5 to 8 s of one PostgreSQL core at a million customers and grows linearly;
no row leaves the database except sealed attribute values (no SQL can check a ciphertext: they
are opened and checked here in batches, about 5 us each, yielding to the event loop between
batches). The service reuses a computed report for `CRM_PROFILE_QUALITY_CACHE_SECONDS`. Core
personal fields (name, ID number, phone, e-mail, address) are stored only sealed and are checked
on every write path (API, import, merge) before they are sealed; their validity is not re-checked
here (a decryption per value), only their completeness and duplicates.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.attributes import rules as attribute_rules
from crm_profile.attributes.model import AttributeDefinition, AttributeValue, ValueType
from crm_profile.attributes.repository import parse_canonical
from crm_profile.attributes.rules import history_field
from crm_profile.customers.tables import customer as customer_table
from crm_profile.customers.vault import PersonalDataVault
from crm_profile.quality.rules import FieldCounts

# Core field -> (SQL of "has a value", {rule: SQL of "breaks the rule"}), over `customer c`.
# The rules are the SQL-checkable ones of customers.rules.validate.
_ISO_COUNTRY = "'^[A-Z]{2}$'"
_CORE: dict[str, tuple[str, dict[str, str]]] = {
    "customer_type": ("c.customer_type <> 0", {"ENUM": "c.customer_type NOT IN (1, 2)"}),
    "full_name": ("c.full_name_sealed IS NOT NULL", {}),
    "birth_date": ("c.birth_date IS NOT NULL", {"DATE_RANGE": "c.birth_date < DATE '1900-01-01'",
                                                  "DATE_NOT_IN_FUTURE": "c.birth_date > current_date"}),
    "gender": ("c.gender <> 0", {"ENUM": "c.gender NOT IN (1, 2, 3)"}),
    "nationality": ("c.nationality <> ''", {"ISO_3166_ALPHA2": f"c.nationality !~ {_ISO_COUNTRY}"}),
    "id_document.type": ("c.id_type <> 0 OR c.id_number_sealed IS NOT NULL",
                         {"REQUIRED_WITH_NUMBER": "c.id_type = 0", "ENUM": "c.id_type NOT IN (0, 1, 2, 3, 4)"}),
    "id_document.number": ("c.id_number_sealed IS NOT NULL", {}),
    "id_document.issuing_country": ("c.id_issuing_country <> ''",
                                    {"ISO_3166_ALPHA2": f"c.id_issuing_country !~ {_ISO_COUNTRY}"}),
    "id_document.expires_on": ("c.id_expires_on IS NOT NULL", {}),
    "mobile_phone": ("c.mobile_phone_sealed IS NOT NULL", {}),
    "email": ("c.email_sealed IS NOT NULL", {}),
    "address": ("c.address_sealed IS NOT NULL", {}),
    "occupation": ("c.occupation <> ''", {"LENGTH": "char_length(c.occupation) > 100"}),
    "kyc_status": ("c.kyc_status <> 0", {"ENUM": "c.kyc_status NOT IN (1, 2, 3, 4)"}),
    "risk_tolerance": ("c.risk_tolerance <> 0", {"ENUM": "c.risk_tolerance NOT IN (1, 2, 3, 4, 5)"}),
    "relationship_manager_id": ("c.relationship_manager_id <> ''",
                                {"LENGTH": "char_length(c.relationship_manager_id) > 64"}),
    "branch_id": ("c.branch_id <> ''", {"LENGTH": "char_length(c.branch_id) > 32"}),
    "onboarded_on": ("c.onboarded_on IS NOT NULL", {}),
    "closed_on": ("c.closed_on IS NOT NULL", {"NOT_BEFORE_ONBOARDED": "c.closed_on < c.onboarded_on"}),
    "preferred_language": ("c.preferred_language <> ''",
                           {"BCP47": "c.preferred_language !~ '^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$'"}),
}
# Identifier field -> its blind index column.
_INDEXES = {"id_document.number": "id_number_index", "mobile_phone": "mobile_phone_index", "email": "email_index"}
_SEALED_BATCH = 2000
# Memory for the report's hash aggregates (one transaction only): enough to keep a million blind
# indexes' groups off disk.
_WORK_MEM = "64MB"


@dataclass
class Aggregates:
    """Populations by source system ("" for all) and counts by (field, source system)."""

    populations: dict[str, int] = field(default_factory=dict)
    counts: dict[tuple[str, str], FieldCounts] = field(default_factory=dict)

    def counts_for(self, field_path: str, source: str) -> FieldCounts:
        return self.counts.setdefault((field_path, source), FieldCounts())


def _active(alias: str) -> str:
    """Only live customers count: merged and erased records are left out once `state` exists."""
    return f"{alias}.state = 1" if "state" in customer_table.c else "TRUE"


class QualityRepository:
    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault

    async def core(self, session: AsyncConnection) -> Aggregates:
        columns = ["c.source_system", "count(*) AS population"]
        names: list[tuple[str, str, str]] = []  # (column, field, what: filled/invalid/rule name/duplicates)
        for i, (path, (filled, rules)) in enumerate(_CORE.items()):
            columns.append(f"count(*) FILTER (WHERE {filled}) AS f{i}")
            names.append((f"f{i}", path, "filled"))
            # A core field's rules exclude each other (a date is either before 1900 or in the future),
            # so its invalid count is the sum of its rules' counts: no extra aggregate.
            for j, (rule, broken) in enumerate(rules.items()):
                columns.append(f"count(*) FILTER (WHERE ({filled}) AND ({broken})) AS r{i}_{j}")
                names.append((f"r{i}_{j}", path, rule))
        # Grouped by source only (a hash aggregate over a handful of groups); the all-sources row is
        # their sum, which costs nothing, where GROUPING SETS would sort a million wide rows.
        statement = f"SELECT {', '.join(columns)} FROM customer c WHERE {_active('c')} GROUP BY c.source_system"
        aggregates = Aggregates()
        aggregates.populations[""] = 0
        await session.execute(sa.text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
        for row in (await session.execute(sa.text(statement))).mappings():
            source = row["source_system"]
            aggregates.populations[source] = row["population"]
            aggregates.populations[""] += row["population"]
            for column, path, what in names:
                for counts in (aggregates.counts_for(path, source), aggregates.counts_for(path, "")):
                    if what == "filled":
                        counts.filled += row[column]
                    else:
                        counts.invalid += row[column]
                        counts.violations[what] = counts.violations.get(what, 0) + row[column]
        for path, index in _INDEXES.items():
            # Values held more than once by anyone: an index-only scan of the blind index in order
            # (no heap, no hash table); then their active holders, probed through the same index.
            rows = await session.execute(sa.text(
                f"WITH candidate AS MATERIALIZED (SELECT {index} AS idx FROM customer WHERE {index} IS NOT NULL"
                f" GROUP BY {index} HAVING count(*) > 1),"
                # OFFSET 0 keeps the lateral probe a nested loop: the planner cannot know how few
                # candidates there are and would otherwise hash the whole table.
                f" holder AS (SELECT h.source_system, candidate.idx FROM candidate CROSS JOIN LATERAL"
                f" (SELECT c.source_system FROM customer c WHERE c.{index} = candidate.idx AND {_active('c')}"
                " OFFSET 0) h),"
                " shared AS (SELECT idx FROM holder GROUP BY idx HAVING count(*) > 1)"
                " SELECT holder.source_system, count(*) AS n FROM holder JOIN shared ON shared.idx = holder.idx"
                " GROUP BY holder.source_system"))
            for source, n in rows:
                aggregates.counts_for(path, source).duplicates += n
                aggregates.counts_for(path, "").duplicates += n
        return aggregates

    async def attributes(self, session: AsyncConnection, definitions: Sequence[AttributeDefinition],
                         aggregates: Aggregates, *, today: date) -> None:
        """Add filled, invalid and per-rule counts of attribute values to `aggregates`."""
        if not definitions:
            return
        # A pattern PostgreSQL cannot compile (RE2 and POSIX AREs differ at the edges) is checked in
        # Python instead, over the distinct values: one value per group, not per customer.
        foreign = {d.attribute_id for d in definitions if d.validation.pattern and not d.encrypted
                   and not await self.postgres_can_match(session, f"^(?:{d.validation.pattern})$")}
        params: dict[str, Any] = {}
        columns = ["a.attribute_id", "c.source_system", "count(*) AS filled"]
        names: list[tuple[str, str, str]] = []
        for i, definition in enumerate(definitions):
            rules = _attribute_rules(definition, i, params, sql_pattern=definition.attribute_id not in foreign)
            params[f"id{i}"] = definition.attribute_id
            if rules:
                either = " OR ".join(f"({sql})" for sql in rules.values())
                columns.append(f"count(*) FILTER (WHERE a.attribute_id = :id{i} AND a.value_sealed IS NULL"
                               f" AND ({either})) AS x{i}")
                names.append((f"x{i}", definition.attribute_id, "invalid"))
            for j, (rule, sql) in enumerate(rules.items()):
                columns.append(f"count(*) FILTER (WHERE a.attribute_id = :id{i} AND a.value_sealed IS NULL"
                               f" AND ({sql})) AS r{i}_{j}")
                names.append((f"r{i}_{j}", definition.attribute_id, rule))
        statement = (f"SELECT {', '.join(columns)} FROM customer_attribute a"
                     " JOIN customer c ON c.customer_id = a.customer_id"
                     f" WHERE a.attribute_id IN ({', '.join(f':id{i}' for i in range(len(definitions)))})"
                     f" AND {_active('c')}"
                     " GROUP BY a.attribute_id, c.source_system")
        for row in (await session.execute(sa.text(statement), params)).mappings():
            path = history_field(row["attribute_id"])
            for counts in (aggregates.counts_for(path, row["source_system"]), aggregates.counts_for(path, "")):
                counts.filled += row["filled"]
                for column, attribute_id, what in names:
                    if attribute_id != row["attribute_id"]:
                        continue
                    if what == "invalid":
                        counts.invalid += row[column]
                    else:
                        counts.violations[what] = counts.violations.get(what, 0) + row[column]
        for definition in definitions:
            if definition.encrypted:
                await self._sealed(session, definition, aggregates, today=today)
            elif definition.attribute_id in foreign:
                await self._pattern_in_python(session, definition, aggregates)

    async def _pattern_in_python(self, session: AsyncConnection, definition: AttributeDefinition,
                                 aggregates: Aggregates) -> None:
        path = history_field(definition.attribute_id)
        length_ok = f"char_length(a.value_text) BETWEEN {definition.validation.min_length}" \
                    f" AND {attribute_rules.effective_max_length(definition.validation)}"
        rows = await session.execute(sa.text(
            "SELECT a.value_text, c.source_system, count(*) AS n FROM customer_attribute a"
            " JOIN customer c ON c.customer_id = a.customer_id"
            f" WHERE a.attribute_id = :id AND a.value_sealed IS NULL AND {length_ok} AND {_active('c')}"
            " GROUP BY a.value_text, c.source_system"), {"id": definition.attribute_id})
        pattern = re.compile(definition.validation.pattern)
        for text, source, n in rows:
            if pattern.fullmatch(text) is None:
                for counts in (aggregates.counts_for(path, ""), aggregates.counts_for(path, source)):
                    counts.invalid += n
                    counts.violations[attribute_rules.RULE_PATTERN] = \
                        counts.violations.get(attribute_rules.RULE_PATTERN, 0) + n

    async def _sealed(self, session: AsyncConnection, definition: AttributeDefinition, aggregates: Aggregates,
                      *, today: date) -> None:
        """Open and check the sealed values of one attribute, a batch at a time (yielding between)."""
        path = history_field(definition.attribute_id)
        query = sa.text("SELECT a.customer_id, c.source_system, a.value_sealed FROM customer_attribute a"
                        " JOIN customer c ON c.customer_id = a.customer_id"
                        f" WHERE a.attribute_id = :id AND a.value_sealed IS NOT NULL AND {_active('c')}")
        result = await session.stream(query, {"id": definition.attribute_id})
        async for batch in result.partitions(_SEALED_BATCH):
            for customer_id, source, sealed in batch:
                text = self._vault.open_field(customer_id, path, sealed)
                value = AttributeValue(definition.value_type, parse_canonical(definition.value_type, text))
                problem = attribute_rules.check_value(definition, value, today=today)
                if problem is None:
                    continue
                for counts in (aggregates.counts_for(path, ""), aggregates.counts_for(path, source)):
                    counts.invalid += 1
                    rule = problem.rule or "TYPE"
                    counts.violations[rule] = counts.violations.get(rule, 0) + 1
            await asyncio.sleep(0)

    async def postgres_can_match(self, session: AsyncConnection, pattern: str) -> bool:
        """Whether PostgreSQL's regular expressions accept `pattern` (RE2 and POSIX ARE mostly agree)."""
        try:
            async with session.begin_nested():
                await session.execute(sa.text("SELECT '' ~ :p"), {"p": pattern})
        except sa.exc.DBAPIError:
            return False
        return True

    async def pending_match_candidates(self, session: AsyncConnection) -> int | None:
        """Pending match candidates of identity resolution, or None when that table does not exist."""
        if await session.scalar(sa.text("SELECT to_regclass('match_candidate')")) is None:
            return None
        return int(await session.scalar(sa.text("SELECT count(*) FROM match_candidate WHERE state = 1")) or 0)

    async def customers_sharing_an_identifier(self, session: AsyncConnection) -> int:
        """Active customers who share an ID number, phone or e-mail with another (blind indexes)."""
        parts = " OR ".join(
            f"(c.{index} IS NOT NULL AND EXISTS (SELECT 1 FROM customer o WHERE o.{index} = c.{index}"
            f" AND o.customer_id <> c.customer_id AND {_active('o')}))" for index in _INDEXES.values())
        return int(await session.scalar(sa.text(
            f"SELECT count(*) FROM customer c WHERE {_active('c')} AND ({parts})")) or 0)


def _attribute_rules(definition: AttributeDefinition, i: int, params: dict[str, Any], *,
                     sql_pattern: bool) -> dict[str, str]:
    """SQL of each declared rule of a clear attribute value, over `customer_attribute a`."""
    rules = definition.validation
    out: dict[str, str] = {}
    kind = definition.value_type
    if kind is ValueType.STRING:
        params[f"minlen{i}"], params[f"maxlen{i}"] = rules.min_length, attribute_rules.effective_max_length(rules)
        out[attribute_rules.RULE_LENGTH] = f"char_length(a.value_text) NOT BETWEEN :minlen{i} AND :maxlen{i}"
        if rules.pattern and sql_pattern:
            params[f"pattern{i}"] = f"^(?:{rules.pattern})$"
            out[attribute_rules.RULE_PATTERN] = f"a.value_text !~ :pattern{i}"
    elif kind in (ValueType.INT, ValueType.DECIMAL):
        bounds = []
        if rules.min_value is not None:
            params[f"min{i}"] = rules.min_value
            bounds.append(f"a.value_number < :min{i}")
        if rules.max_value is not None:
            params[f"max{i}"] = rules.max_value
            bounds.append(f"a.value_number > :max{i}")
        if bounds:
            out[attribute_rules.RULE_RANGE] = " OR ".join(bounds)
        if rules.max_fraction_digits:
            params[f"scale{i}"] = rules.max_fraction_digits
            out[attribute_rules.RULE_FRACTION_DIGITS] = f"scale(a.value_number) > :scale{i}"
    elif kind is ValueType.DATE:
        bounds = []
        if rules.min_date is not None:
            params[f"mindate{i}"] = rules.min_date
            bounds.append(f"a.value_date < :mindate{i}")
        if rules.max_date is not None:
            params[f"maxdate{i}"] = rules.max_date
            bounds.append(f"a.value_date > :maxdate{i}")
        if bounds:
            out[attribute_rules.RULE_DATE_RANGE] = " OR ".join(bounds)
        if rules.not_in_future:
            out[attribute_rules.RULE_NOT_IN_FUTURE] = "a.value_date > current_date"
    elif kind is ValueType.ENUM:
        params[f"allowed{i}"] = [a.value for a in rules.allowed_values]
        out[attribute_rules.RULE_ALLOWED_VALUES] = f"a.value_text <> ALL(:allowed{i})"
    return out
