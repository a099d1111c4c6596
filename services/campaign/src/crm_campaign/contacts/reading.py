"""Reading a contact-history file into contacts and bad rows: pure, run in a worker process."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from crm_campaign.contacts import rules
from crm_campaign.contacts.model import BadRow, ImportedContact, ImportSpec, ParsedFile
from crm_campaign.contacts.rules import CellError


def header(content: bytes, spec: ImportSpec) -> list[str]:
    """The header line's column names (empty when the file cannot be read as text)."""
    first = content.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        return []
    return next(csv.reader([text], delimiter=spec.delimiter, quotechar=spec.quote), [])


def _records(content: bytes, spec: ImportSpec) -> Iterator[tuple[int, list[str] | None]]:
    """(line, cells) for every record after the header; cells None for an unreadable line."""
    text = content.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec.delimiter, quotechar=spec.quote,
                        strict=True)
    line = 1
    try:
        next(reader)
    except (StopIteration, csv.Error):
        return
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield start, None
            continue
        line = start
        if cells:
            yield line, cells


def parse(argument: tuple[bytes, ImportSpec]) -> ParsedFile:
    """Every row of the file as a contact, or as the problems that make it bad (worker function)."""
    content, spec = argument
    names = header(content, spec)
    index = {name: i for i, name in enumerate(names)}
    nulls = {value.strip() for value in spec.null_values} | {""}
    maps = [dict(column.value_map) for column in spec.columns]
    contacts: list[ImportedContact] = []
    problems: list[BadRow] = []
    bad = rows = 0
    seen: set[tuple[str, str, str]] = set()
    for line, cells in _records(content, spec):
        rows += 1
        if cells is None or len(cells) != len(names) or "\ufffd" in "".join(cells):
            bad += 1
            problems.append(BadRow(line, "", "", "MALFORMED_ROW",
                                   f"a row must have {len(names)} cells in valid UTF-8 with balanced quotes"))
            continue
        row_problems: list[BadRow] = []
        values: dict[str, Any] = {}
        context: dict[str, float | str | bool] = {}
        try:
            cell = cells[index[spec.customer_id_column]].strip() if spec.customer_id_column else None
            values["customer_id"] = rules.customer_id(spec, line=line, cell=cell)
        except CellError as error:
            row_problems.append(BadRow(line, spec.customer_id_column, "customer_id", error.reason, error.description))
        for column, value_map in zip(spec.columns, maps, strict=True):
            raw = cells[index[column.column]].strip()
            raw = value_map.get(raw, raw).strip()
            if raw in nulls:
                continue
            try:
                if column.field:
                    values[column.field] = rules.FIELDS[column.field](raw)
                else:
                    context[column.context] = rules.context_value(column.context_type, raw)
            except CellError as error:
                row_problems.append(BadRow(line, column.column, column.target, error.reason,
                                           f"{column.target} {error.description}"))
        for name in rules.REQUIRED_FIELDS:
            if name not in values and not any(p.field == name for p in row_problems):
                source = next(c.column for c in spec.columns if c.field == name)
                row_problems.append(BadRow(line, source, name, "REQUIRED", f"{name} is required"))
        values.setdefault("offer_type", spec.offer_type)
        if not values["offer_type"]:
            source = next(c.column for c in spec.columns if c.field == "offer_type")
            row_problems.append(BadRow(line, source, "offer_type", "REQUIRED", "offer_type is required"))
        if row_problems:
            bad += 1
            problems.extend(row_problems)
            continue
        contact = ImportedContact(
            line=line, customer_id=values["customer_id"], offer_type=values["offer_type"],
            channel=values["channel"], outcome=values["outcome"], contacted_at=values.get("contact_time"),
            contact_month=values.get("contact_month"), contact_day_of_week=values.get("contact_day_of_week"),
            attempt_number=values.get("attempt_number"), previous_outcome=values.get("previous_outcome", 0),
            days_since_previous_contact=values.get("days_since_previous_contact"),
            previous_contact_count=values.get("previous_contact_count"), context=context)
        key = (contact.customer_id, contact.offer_type, contact.contact_key)
        if key in seen:
            bad += 1
            problems.append(BadRow(line, spec.customer_id_column, "customer_id", "DUPLICATE_CONTACT",
                                   "an earlier row of the file has the same customer, offer type, attempt and time"))
            continue
        seen.add(key)
        contacts.append(contact)
    return ParsedFile(contacts=tuple(contacts), bad_rows=tuple(problems), bad_row_count=bad, row_count=rows)
