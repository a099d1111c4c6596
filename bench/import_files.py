"""Synthetic import files: the benchmark's customers as a CSV file, and the mapping that reads it."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from crm.profile.v1 import customer_pb2

COLUMNS = ("customer_id", "customer_type", "full_name", "birth_date", "gender", "nationality", "id_type",
           "id_number", "id_country", "mobile_phone", "email", "region_code", "administrative_area", "locality",
           "postal_code", "address_line", "occupation", "kyc_status", "risk_tolerance", "relationship_manager_id",
           "branch_id", "preferred_language")

# The file's columns -> the import's core field paths (enum columns hold value names).
TARGETS = {
    "customer_type": "customer_type", "full_name": "full_name", "birth_date": "birth_date", "gender": "gender",
    "nationality": "nationality", "id_type": "id_document.type", "id_number": "id_document.number",
    "id_country": "id_document.issuing_country", "mobile_phone": "mobile_phone", "email": "email",
    "region_code": "address.region_code", "administrative_area": "address.administrative_area",
    "locality": "address.locality", "postal_code": "address.postal_code", "address_line": "address.address_lines",
    "occupation": "occupation", "kyc_status": "kyc_status", "risk_tolerance": "risk_tolerance",
    "relationship_manager_id": "relationship_manager_id", "branch_id": "branch_id",
    "preferred_language": "preferred_language",
}


def mapping() -> dict[str, Any]:
    """The ImportMapping (proto JSON) of a file written by `write_csv`."""
    return {"customerId": {"column": "customer_id"},
            "columns": [{"column": column, "field": field} for column, field in TARGETS.items()]}


def row_of(c: customer_pb2.Customer, *, occupation: str | None = None) -> list[str]:
    d, a = c.birth_date, c.address
    return [
        c.customer_id, customer_pb2.CustomerType.Name(c.customer_type), c.full_name,
        f"{d.year:04d}-{d.month:02d}-{d.day:02d}", customer_pb2.Gender.Name(c.gender), c.nationality,
        customer_pb2.IdDocumentType.Name(c.id_document.type), c.id_document.number, c.id_document.issuing_country,
        c.mobile_phone, c.email, a.region_code, a.administrative_area, a.locality, a.postal_code,
        a.address_lines[0] if a.address_lines else "", occupation if occupation is not None else c.occupation,
        customer_pb2.KycStatus.Name(c.kyc_status), customer_pb2.RiskTolerance.Name(c.risk_tolerance),
        c.relationship_manager_id, c.branch_id, c.preferred_language,
    ]


def write_csv(path: Path, customers: Iterable[customer_pb2.Customer], *, occupation: str | None = None) -> int:
    """Write the customers as CSV (a header line, then one line each); the number of rows.
    With `occupation`, every row carries that occupation instead (a file that changes every customer)."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(COLUMNS)
        for customer in customers:
            writer.writerow(row_of(customer, occupation=occupation))
            count += 1
    return count
