"""From a file's cells to customer values: the column mapping, compiled once per import. No I/O.

A cell goes through the same steps whatever the file format: trimmed; a configured null value
(or nothing) means "no value"; the column's `value_map` replaces it; the column's
`default_value` stands in for no value; then it is converted to the target's type (text, enum
value by name, date by `date_format`). What cannot be converted becomes a `BadRow` naming the
line, the column, the target and the rule, never the value itself.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_profile.attributes.model import AttributeDefinition, AttributeValue, ValueType
from crm_profile.attributes.rules import check_value
from crm_profile.customers.model import ENUM_FIELDS, Customer
from crm_profile.imports.model import BadRow, ColumnRule, ImportSpec

TEXT, ENUM, DATE = "text", "enum", "date"

# Core target path -> (Customer field, kind). `address.*` parts go into the address dict.
CORE_TARGETS: dict[str, tuple[str, str]] = {
    "customer_type": ("customer_type", ENUM),
    "full_name": ("full_name", TEXT),
    "birth_date": ("birth_date", DATE),
    "gender": ("gender", ENUM),
    "nationality": ("nationality", TEXT),
    "id_document.type": ("id_type", ENUM),
    "id_document.number": ("id_number", TEXT),
    "id_document.issuing_country": ("id_issuing_country", TEXT),
    "id_document.expires_on": ("id_expires_on", DATE),
    "mobile_phone": ("mobile_phone", TEXT),
    "email": ("email", TEXT),
    "address.region_code": ("address", TEXT),
    "address.postal_code": ("address", TEXT),
    "address.administrative_area": ("address", TEXT),
    "address.locality": ("address", TEXT),
    "address.sublocality": ("address", TEXT),
    "address.address_lines": ("address", TEXT),
    "occupation": ("occupation", TEXT),
    "kyc_status": ("kyc_status", ENUM),
    "risk_tolerance": ("risk_tolerance", ENUM),
    "relationship_manager_id": ("relationship_manager_id", TEXT),
    "branch_id": ("branch_id", TEXT),
    "onboarded_on": ("onboarded_on", DATE),
    "closed_on": ("closed_on", DATE),
    "preferred_language": ("preferred_language", TEXT),
}
# google.type.PostalAddress members, in the proto JSON form the customer model keeps.
ADDRESS_KEYS = {
    "address.region_code": "regionCode", "address.postal_code": "postalCode",
    "address.administrative_area": "administrativeArea", "address.locality": "locality",
    "address.sublocality": "sublocality", "address.address_lines": "addressLines",
}
REPEATABLE_TARGETS = frozenset({"address.address_lines"})
# Core target path -> Customer field, for the targets that are not parts of the address.
_FIELD_OF_TARGET = {target: field for target, (field, _) in CORE_TARGETS.items() if target not in ADDRESS_KEYS}
ISO_DATE = "%Y-%m-%d"

# Target path -> {upper-case value name, with and without its prefix: number}.
EnumValues = Mapping[str, Mapping[str, int]]
ENUM_VALUES: EnumValues = {path: {name: m.value for m in enum for name in (prefix + m.name, m.name)}
                           for path, (enum, prefix) in ENUM_FIELDS.items()}
# The values compared to decide whether a row changes its customer (bookkeeping left out), as a tuple.
_compared_values = operator.attrgetter(
    *(f.name for f in dataclasses.fields(Customer) if f.name not in {"version", "created_at", "updated_at"}))


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    description: str


Cell = str | date | None
Converter = Callable[[Any], Any]


class _Column:
    """One ColumnRule bound to its position in the file."""

    __slots__ = ("convert", "default", "index", "memoise", "null_values", "repeatable", "rule", "target", "value_map")

    def __init__(self, rule: ColumnRule, index: int, convert: Converter, null_values: frozenset[str], *,
                 memoise: bool = False) -> None:
        self.rule = rule
        self.index = index
        self.target = rule.target
        self.repeatable = rule.target in REPEATABLE_TARGETS
        self.convert = convert
        # Whether equal texts may share one converted value (immutable results: enum numbers, dates).
        self.memoise = memoise
        self.value_map = dict(rule.value_map)
        self.null_values = null_values
        self.default = rule.default_value

    def read(self, cell: Cell) -> Any:
        """The converted value, None for no value; raises _CellError when it cannot be converted."""
        if cell is None:
            text = ""
        elif isinstance(cell, str):
            text = cell.strip()
            if text in self.null_values:
                text = ""
            elif self.value_map:
                text = self.value_map.get(text, text).strip()
        else:  # a native date from Parquet
            return cell
        if not text:
            if not self.default:
                return None
            text = self.default
        return self.convert(text)


    def read_column(self, cells: Sequence[Cell], *, text_only: bool) -> list[Any]:
        """`read` of every cell of a batch's column, in one pass: a value, None, or the _CellError
        the cell raised (returned, so one bad cell does not stop the column). With `text_only`
        (CSV: every cell a str), a plain text column (no value map, no default) takes a
        comprehension, and enum and date cells are converted once per distinct text."""
        nulls, value_map, default, convert = self.null_values, self.value_map, self.default, self.convert
        if text_only and convert is _text and not value_map and not default:
            return [None if not (text := cell.strip()) or text in nulls else text  # type: ignore[union-attr]
                    for cell in cells]
        memo: dict[str, Any] | None = {} if self.memoise else None
        out: list[Any] = []
        for cell in cells:
            if not text_only and not isinstance(cell, str):
                try:  # None or a native date (Parquet): as `read` takes them
                    out.append(self.read(cell))
                except _CellError as error:
                    out.append(error)
                continue
            text = cell.strip()  # type: ignore[union-attr]
            if text in nulls:
                text = ""
            elif value_map:
                text = value_map.get(text, text).strip()
            if not text:
                if not default:
                    out.append(None)
                    continue
                text = default
            if memo is not None and text in memo:
                out.append(memo[text])
                continue
            try:
                value = convert(text)
            except _CellError as error:
                value = error
            if memo is not None:
                memo[text] = value
            out.append(value)
        return out


class _CellError(Exception):
    def __init__(self, reason: str, rule: str) -> None:
        self.reason = reason
        self.rule = rule


def _text(value: str) -> str:
    return value


def _enum(path: str, values: Mapping[str, int]) -> Converter:
    examples = ", ".join(sorted((name for name, number in values.items() if number), key=len)[:3])

    def convert(value: str) -> int:
        number = values.get(value.upper())
        if number is None:
            raise _CellError("UNKNOWN_ENUM_VALUE", f"must be the name of a {path} value, such as {examples}")
        return number

    return convert


def _date(date_format: str) -> Converter:
    fmt = date_format or ISO_DATE

    def convert(value: str) -> date:
        try:
            if fmt == ISO_DATE and len(value) == 10:
                return date.fromisoformat(value)
            return datetime.strptime(value, fmt).date()
        except ValueError:
            raise _CellError("INVALID_DATE", f"must be a real calendar date in the format {fmt}") from None

    return convert


# How a cell of each attribute type must read, for the bad-row description.
_KIND_WORDS = {ValueType.INT: "an integer", ValueType.DECIMAL: "a decimal number",
               ValueType.BOOL: "true or false", ValueType.DATE: "a date"}


def _attribute(definition: AttributeDefinition | None, date_format: str) -> Converter:
    """Text -> AttributeValue of the declared type (validated later with the catalogue's rules)."""
    kind = definition.value_type if definition is not None else ValueType.STRING
    as_date = _date(date_format)

    def convert(value: str) -> AttributeValue:
        try:
            if kind in (ValueType.STRING, ValueType.ENUM):
                return AttributeValue(kind, value)
            if kind is ValueType.INT:
                return AttributeValue(kind, int(value))
            if kind is ValueType.DECIMAL:
                number = Decimal(value)
                if not number.is_finite():
                    raise InvalidOperation
                return AttributeValue(kind, number)
            if kind is ValueType.BOOL:
                flag = {"true": True, "false": False}.get(value.lower())
                if flag is None:
                    raise ValueError
                return AttributeValue(kind, flag)
            return AttributeValue(kind, as_date(value))
        except (ValueError, InvalidOperation):
            raise _CellError("INVALID_FORMAT", f"must be {_KIND_WORDS.get(kind, 'a valid value')} (map other "
                                               "spellings with value_map)") from None

    return convert


@dataclasses.dataclass(slots=True)
class MappedRow:
    """One row read through the mapping: the id, the values by target, and what was wrong."""

    line: int
    customer_id: str
    values: dict[str, Any]
    problems: list[BadRow]


class RowMapper:
    """A mapping bound to one file's columns: turns a row's cells into a MappedRow."""

    def __init__(self, spec: ImportSpec, columns: Sequence[str], *, enum_values: EnumValues,
                 definitions: Mapping[str, AttributeDefinition] | None = None) -> None:
        positions = {name: i for i, name in enumerate(columns)}
        nulls = frozenset(v.strip() for v in spec.csv.null_values)
        definitions = definitions or {}
        self._columns: list[_Column] = []
        for rule in spec.columns:
            kind = CORE_TARGETS[rule.field][1] if rule.field else ""
            if rule.field:
                convert = (_enum(rule.field, enum_values[rule.field]) if kind == ENUM
                           else _date(rule.date_format) if kind == DATE else _text)
            else:
                convert = _attribute(definitions.get(rule.attribute), rule.date_format)
            self._columns.append(_Column(rule, positions[rule.column], convert, nulls, memoise=kind in (ENUM, DATE)))
        self._id_index = positions[spec.id_rule.column] if spec.id_rule.column else None
        self._id_column = spec.id_rule.column
        self._prefix = spec.id_rule.prefix
        self.column_of = {c.target: c.rule.column for c in reversed(self._columns)}
        self.column_of["customer_id"] = self._id_column
        self._definitions = definitions

    def _customer_id(self, line: int, cells: Sequence[Cell]) -> str:
        if self._id_index is None:
            return f"{self._prefix}{line}"
        raw = cells[self._id_index]
        text = raw.strip() if isinstance(raw, str) else ("" if raw is None else str(raw))
        return f"{self._prefix}{text}" if text else ""

    def read_batch(self, lines: Sequence[int], rows: Sequence[Sequence[Cell]], *, text_only: bool = False
                   ) -> list[MappedRow]:
        """`read` of many rows (the same MappedRows), done column by column: each column's cells
        go through its steps in one pass (`_Column.read_column`), then land on their rows in
        column order, as `read` puts them. `text_only`: every cell is a str (CSV)."""
        values: list[dict[str, Any]] = [{} for _ in rows]
        problems: list[list[BadRow]] = [[] for _ in rows]
        for column in self._columns:
            index, target, name = column.index, column.target, column.rule.column
            converted = column.read_column([cells[index] for cells in rows], text_only=text_only)
            for value, found, line, wrong in zip(converted, values, lines, problems, strict=True):
                if value is None:
                    continue
                if value.__class__ is _CellError:
                    wrong.append(BadRow(line, name, target, value.reason, f"{target} {value.rule}"))
                    found.setdefault(target, _FAILED)
                elif column.repeatable:
                    found.setdefault(target, []).append(value)
                else:
                    found[target] = value
        return [MappedRow(line, self._customer_id(line, cells), found, wrong)
                for line, cells, found, wrong in zip(lines, rows, values, problems, strict=True)]

    def read(self, line: int, cells: Sequence[Cell]) -> MappedRow:
        problems: list[BadRow] = []
        customer_id = self._customer_id(line, cells)
        values: dict[str, Any] = {}
        for column in self._columns:
            try:
                value = column.read(cells[column.index])
            except _CellError as error:
                problems.append(BadRow(line, column.rule.column, column.target, error.reason,
                                       f"{column.target} {error.rule}"))
                values.setdefault(column.target, _FAILED)
                continue
            if value is None:
                continue
            if column.repeatable:
                values.setdefault(column.target, []).append(value)
            else:
                values[column.target] = value
        return MappedRow(line, customer_id, values, problems)

    # --- onto a customer ---------------------------------------------------------------------------

    def new_customer(self, row: MappedRow, *, today: date, source_system: str) -> Customer:
        """The customer a row creates (before normalising and validating, as CreateCustomer)."""
        fields, address, attributes = _split(row.values)
        customer = Customer(**{"customer_id": row.customer_id, "customer_type": 0, "full_name": "", **fields})
        if address:
            customer.address = address
        if attributes:
            customer.attributes = attributes
        if customer.onboarded_on is None:
            customer.onboarded_on = today
        customer.source_system = source_system
        return customer

    def updated_customer(self, row: MappedRow, current: Customer) -> Customer:
        """`current` with the row's values over it; cells without a value leave a field alone."""
        fields, address, attributes = _split(row.values)
        merged = current.replace(**fields)
        if address:
            merged.address = {**current.address, **address}
        if attributes:
            merged.attributes = {**current.attributes, **attributes}
        return merged

    def check_attributes(self, row: MappedRow, customer: Customer, *, today: date) -> None:
        """Add a problem for every attribute value the catalogue's rules refuse; mark the values
        of encrypted classes personal (the vault seals them)."""
        for key, value in list(customer.attributes.items()):
            target = f"attributes.{key}"
            if target not in row.values or row.values[target] is _FAILED:
                continue
            definition = self._definitions[key]
            problem = check_value(definition, value, today=today)
            if problem is not None:
                reason = "ATTRIBUTE_VALIDATION_FAILED" if problem.reason != "ATTRIBUTE_TYPE_MISMATCH" else \
                    "OUT_OF_RANGE"
                row.problems.append(BadRow(row.line, self.column_of.get(target, ""), target, reason,
                                           f"{target} {problem.description}"))
            elif definition.encrypted and not value.personal:
                customer.attributes[key] = dataclasses.replace(value, personal=True)


_FAILED = object()  # a value that could not be converted: its field is reported, not validated


def _split(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, AttributeValue]]:
    fields: dict[str, Any] = {}
    address: dict[str, Any] = {}
    attributes: dict[str, AttributeValue] = {}
    for target, value in values.items():
        if value is _FAILED:
            continue
        field = _FIELD_OF_TARGET.get(target)  # most targets are plain fields: asked first
        if field is not None:
            fields[field] = value
        elif target in ADDRESS_KEYS:
            address[ADDRESS_KEYS[target]] = value
        else:
            attributes[target.removeprefix("attributes.")] = value
    return fields, address, attributes


def failed_targets(row: MappedRow) -> frozenset[str]:
    return frozenset(t for t, v in row.values.items() if v is _FAILED)


def same_customer(a: Customer, b: Customer) -> bool:
    """Whether two customers hold the same values (version and timestamps aside)."""
    return _compared_values(a) == _compared_values(b)
