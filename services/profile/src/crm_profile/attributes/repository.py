"""All SQL about the attribute catalogue and customers' attribute values. Never commits."""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_profile.attributes.model import (
    AllowedValue,
    AttributeDefinition,
    AttributeValue,
    DataClass,
    Validation,
    ValueType,
)
from crm_profile.attributes.rules import history_field
from crm_profile.attributes.tables import attribute_definition as d
from crm_profile.attributes.tables import customer_attribute as a
from crm_profile.customers.vault import PersonalDataVault

# A customer's values as one JSON array, for reading them in the same statement as the customer
# row (`customer` is the outer query's table): one round trip on the GetCustomer hot path.
VALUES_OF_CUSTOMER_SQL = (
    "(SELECT json_agg(json_build_array(ca.attribute_id, ad.value_type, ca.value_text, ca.value_number::text,"
    " ca.value_bool, ca.value_date::text, encode(ca.value_sealed, 'base64')))"
    " FROM customer_attribute ca JOIN attribute_definition ad ON ad.attribute_id = ca.attribute_id"
    " WHERE ca.customer_id = customer.customer_id)"
)


def values_column() -> sa.ColumnElement[Any]:
    """`VALUES_OF_CUSTOMER_SQL` as a column of a select on the customer table."""
    return sa.literal_column(VALUES_OF_CUSTOMER_SQL).label("attribute_values")


def decode_values(vault: PersonalDataVault, customer_id: str,
                  raw: str | bytes | list[Any] | None) -> dict[str, AttributeValue]:
    """The values read through `VALUES_OF_CUSTOMER_SQL` (a JSON text or an already decoded list)."""
    if raw is None:
        return {}
    items = json.loads(raw) if isinstance(raw, str | bytes) else raw
    values: dict[str, AttributeValue] = {}
    for attribute_id, value_type, text, number, flag, day, sealed in items:
        kind = ValueType(value_type)
        if sealed is not None:
            clear = vault.open_field(customer_id, history_field(attribute_id), base64.b64decode(sealed))
            values[attribute_id] = AttributeValue(kind, parse_canonical(kind, clear), personal=True)
        else:
            values[attribute_id] = AttributeValue(kind, _typed(kind, text, number, flag, day))
    return values


def parse_canonical(kind: ValueType, text: str) -> Any:
    if kind in (ValueType.STRING, ValueType.ENUM):
        return text
    if kind is ValueType.INT:
        return int(text)
    if kind is ValueType.DECIMAL:
        return Decimal(text)
    if kind is ValueType.BOOL:
        return text == "true"
    return date.fromisoformat(text)


def _typed(kind: ValueType, text: str | None, number: str | None, flag: bool | None, day: str | None) -> Any:
    if kind in (ValueType.STRING, ValueType.ENUM):
        return text
    if kind is ValueType.INT:
        return int(Decimal(number)) if number is not None else None
    if kind is ValueType.DECIMAL:
        return Decimal(number) if number is not None else None
    if kind is ValueType.BOOL:
        return flag
    return date.fromisoformat(day) if day is not None else None


def _validation_to_json(rules: Validation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("pattern", "min_length", "max_length", "max_fraction_digits", "not_in_future"):
        if getattr(rules, name):
            out[name] = getattr(rules, name)
    for name in ("min_value", "max_value"):
        if getattr(rules, name) is not None:
            out[name] = str(getattr(rules, name))
    for name in ("min_date", "max_date"):
        if getattr(rules, name) is not None:
            out[name] = getattr(rules, name).isoformat()
    if rules.allowed_values:
        out["allowed_values"] = [[v.value, v.display_name] for v in rules.allowed_values]
    return out


def _validation_from_json(raw: Mapping[str, Any]) -> Validation:
    return Validation(
        pattern=raw.get("pattern", ""), min_length=raw.get("min_length", 0), max_length=raw.get("max_length", 0),
        min_value=Decimal(raw["min_value"]) if "min_value" in raw else None,
        max_value=Decimal(raw["max_value"]) if "max_value" in raw else None,
        max_fraction_digits=raw.get("max_fraction_digits", 0),
        min_date=date.fromisoformat(raw["min_date"]) if "min_date" in raw else None,
        max_date=date.fromisoformat(raw["max_date"]) if "max_date" in raw else None,
        not_in_future=raw.get("not_in_future", False),
        allowed_values=tuple(AllowedValue(v, n) for v, n in raw.get("allowed_values", [])),
    )


def _definition_row(definition: AttributeDefinition) -> dict[str, Any]:
    return {
        "display_name": definition.display_name.strip(), "description": definition.description,
        "value_type": int(definition.value_type), "validation": _validation_to_json(definition.validation),
        "data_class": int(definition.data_class), "source_system": definition.source_system,
        "completeness_expected": definition.completeness_expected,
        "max_age_days": definition.max_age.days if definition.max_age is not None else None,
    }


def _definition_from_row(row: RowMapping) -> AttributeDefinition:
    return AttributeDefinition(
        attribute_id=row["attribute_id"], display_name=row["display_name"], description=row["description"],
        value_type=ValueType(row["value_type"]), validation=_validation_from_json(row["validation"]),
        data_class=DataClass(row["data_class"]), source_system=row["source_system"],
        completeness_expected=row["completeness_expected"],
        max_age=timedelta(days=row["max_age_days"]) if row["max_age_days"] is not None else None,
        version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


class AttributeRepository:
    def __init__(self, vault: PersonalDataVault) -> None:
        self._vault = vault

    # --- the catalogue ---------------------------------------------------------------------------

    async def insert_definition(self, session: AsyncConnection,
                                definition: AttributeDefinition) -> AttributeDefinition | None:
        """Insert; None when the attribute id is taken."""
        statement = (pg.insert(d).values(attribute_id=definition.attribute_id, **_definition_row(definition))
                     .on_conflict_do_nothing(index_elements=[d.c.attribute_id]).returning(d))
        row = (await session.execute(statement)).first()
        return _definition_from_row(row._mapping) if row is not None else None

    async def get_definition(self, session: AsyncConnection, attribute_id: str, *,
                             for_update: bool = False) -> AttributeDefinition | None:
        query = sa.select(d).where(d.c.attribute_id == attribute_id)
        if for_update:
            query = query.with_for_update()
        row = (await session.execute(query)).first()
        return _definition_from_row(row._mapping) if row is not None else None

    async def definitions(self, session: AsyncConnection, attribute_ids: Iterable[str] | None = None,
                          ) -> dict[str, AttributeDefinition]:
        """Definitions by id: of `attribute_ids` (unknown ones are absent), or all of them."""
        query = sa.select(d).order_by(d.c.attribute_id)
        if attribute_ids is not None:
            wanted = sorted(set(attribute_ids))
            if not wanted:
                return {}
            query = query.where(d.c.attribute_id.in_(wanted))
        rows = (await session.execute(query)).all()
        return {row.attribute_id: _definition_from_row(row._mapping) for row in rows}

    async def page_definitions(self, session: AsyncConnection, *, after: str | None, limit: int,
                               data_class: int, source_system: str) -> Sequence[AttributeDefinition]:
        query = sa.select(d).order_by(d.c.attribute_id).limit(limit)
        if after is not None:
            query = query.where(d.c.attribute_id > after)
        if data_class:
            query = query.where(d.c.data_class == data_class)
        if source_system:
            query = query.where(d.c.source_system == source_system)
        return [_definition_from_row(row._mapping) for row in (await session.execute(query)).all()]

    async def update_definition(self, session: AsyncConnection,
                                definition: AttributeDefinition) -> AttributeDefinition:
        statement = (sa.update(d).where(d.c.attribute_id == definition.attribute_id)
                     .values(**_definition_row(definition), version=d.c.version + 1, updated_at=sa.func.now())
                     .returning(d))
        return _definition_from_row((await session.execute(statement)).one()._mapping)

    async def delete_definition(self, session: AsyncConnection, attribute_id: str) -> None:
        await session.execute(sa.delete(d).where(d.c.attribute_id == attribute_id))

    # --- values ----------------------------------------------------------------------------------

    async def count_values(self, session: AsyncConnection, attribute_id: str) -> int:
        return int(await session.scalar(
            sa.select(sa.func.count()).select_from(a).where(a.c.attribute_id == attribute_id)) or 0)

    async def held_enum_values(self, session: AsyncConnection, attribute_id: str) -> list[str]:
        rows = await session.execute(sa.select(a.c.value_text).distinct().where(
            a.c.attribute_id == attribute_id, a.c.value_text.is_not(None)))
        return [row.value_text for row in rows]

    async def holders(self, session: AsyncConnection, attribute_id: str) -> list[str]:
        """Ids of the customers holding a value of the attribute, locked for update in id order."""
        rows = await session.execute(sa.select(a.c.customer_id).where(a.c.attribute_id == attribute_id)
                                     .order_by(a.c.customer_id).with_for_update())
        return [row.customer_id for row in rows]

    async def delete_all_values(self, session: AsyncConnection, attribute_id: str) -> int:
        result = await session.execute(sa.delete(a).where(a.c.attribute_id == attribute_id))
        return int(result.rowcount or 0)

    async def write_values(self, session: AsyncConnection, customer_id: str,
                           values: Mapping[str, AttributeValue], *, remove: Collection[str] = ()) -> None:
        """Upsert `values` (their `personal` flag decides sealing) and delete the `remove` keys."""
        if remove:
            await session.execute(sa.delete(a).where(a.c.customer_id == customer_id,
                                                     a.c.attribute_id.in_(sorted(remove))))
        if not values:
            return
        rows = [self._value_row(customer_id, key, value) for key, value in sorted(values.items())]
        statement = pg.insert(a)
        statement = statement.on_conflict_do_update(
            index_elements=[a.c.customer_id, a.c.attribute_id],
            set_={c: statement.excluded[c] for c in
                  ("value_text", "value_number", "value_bool", "value_date", "value_sealed")}
            | {"updated_at": sa.func.now()})
        await session.execute(statement, rows)

    def _value_row(self, customer_id: str, key: str, value: AttributeValue) -> dict[str, Any]:
        row: dict[str, Any] = {"customer_id": customer_id, "attribute_id": key, "value_text": None,
                               "value_number": None, "value_bool": None, "value_date": None, "value_sealed": None}
        if value.personal:
            row["value_sealed"] = self._vault.seal_field(customer_id, history_field(key), value.canonical())
        elif value.type in (ValueType.STRING, ValueType.ENUM):
            row["value_text"] = value.value
        elif value.type in (ValueType.INT, ValueType.DECIMAL):
            assert isinstance(value.value, int | Decimal)
            row["value_number"] = Decimal(value.value)
        elif value.type is ValueType.BOOL:
            row["value_bool"] = value.value
        else:
            row["value_date"] = value.value
        return row

    async def values_of(self, session: AsyncConnection, customer_id: str) -> dict[str, AttributeValue]:
        raw = await session.scalar(sa.select(values_column()).select_from(sa.table("customer")).where(
            sa.literal_column("customer.customer_id") == customer_id))
        return decode_values(self._vault, customer_id, raw)
