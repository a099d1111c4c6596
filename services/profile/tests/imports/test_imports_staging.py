"""What staging leaves in the scratch tables, pinned value for value (issue 18).

The staging step (imports.worker) is the import's per-row Python: mapping, the CreateCustomer
rules, sealing, the change event's payload, the history rows. Its output for a file of good and
bad rows, then for a changed file over the customers it made, is compared with
`staging_golden.json` (written from the code before the issue-18 changes): the same stored
columns, the same per-row error report, the same event payloads and history rows. Sealed
values are compared opened (their nonces are random) together with their key-id header; blind
indexes, with a fixed key, compare as they are.

Regenerate the golden file only for an intended change of behaviour:
`CRM_WRITE_STAGING_GOLDEN=1 pytest services/profile/tests/imports/test_imports_staging.py`.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, json_format
from pydantic import SecretStr

from crm.profile.v1 import customer_pb2
from crm_profile.attributes.model import AttributeDefinition, AttributeValue, DataClass, Validation, ValueType
from crm_profile.customers.model import MERGED, Customer
from crm_profile.customers.repository import CustomerRepository
from crm_profile.history import rules as history_rules
from crm_profile.imports import conversion, reading, worker
from crm_profile.imports.model import (
    BAD,
    INSERT,
    MODE_LENIENT,
    UNCHANGED,
    UPDATE,
    ColumnRule,
    CsvOptions,
    IdRule,
    ImportSpec,
)
from crm_profile.imports.repository import CHANGE_COLUMNS, STORED_COLUMNS, VALUE_COLUMNS, StoredCustomers
from crm_profile.wiring import feed_payload

GOLDEN = Path(__file__).with_name("staging_golden.json")
STAMP = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
KEY = base64.b64encode(bytes(range(32))).decode()
INDEX_KEY = base64.b64encode(bytes(range(32, 64))).decode()
DEFINITIONS = {
    "tier": AttributeDefinition("tier", "Tier", ValueType.STRING, DataClass.NON_PERSONAL, "crm"),
    "nickname": AttributeDefinition("nickname", "Nickname", ValueType.STRING, DataClass.IDENTITY, "crm"),
    "score": AttributeDefinition("score", "Score", ValueType.INT, DataClass.FINANCIAL, "crm",
                                 validation=Validation(min_value=Decimal(300), max_value=Decimal(850))),
}
HEADER = ["id", "type", "name", "born", "sex", "nationality", "doc_type", "doc", "doc_country", "phone", "email",
          "region", "area", "city", "postal", "line1", "line2", "job", "kyc", "risk", "rm", "branch", "lang",
          "onboarded", "closed", "tier", "nickname", "score"]
TARGETS = ["customer_type", "full_name", "birth_date", "gender", "nationality", "id_document.type",
           "id_document.number", "id_document.issuing_country", "mobile_phone", "email", "address.region_code",
           "address.administrative_area", "address.locality", "address.postal_code", "address.address_lines",
           "address.address_lines", "occupation", "kyc_status", "risk_tolerance", "relationship_manager_id",
           "branch_id", "preferred_language", "onboarded_on", "closed_on"]


def spec() -> ImportSpec:
    rules = []
    for column, target in zip(HEADER[1:], TARGETS, strict=False):
        extra: dict[str, Any] = {}
        if column == "born":
            extra["date_format"] = "%d/%m/%Y"
        if column == "sex":
            extra["value_map"] = {"M": "MALE", "F": "FEMALE", "?": ""}
        if column == "kyc":
            extra["default_value"] = "PENDING"
        rules.append(ColumnRule(column, field=target, **extra))
    rules += [ColumnRule("tier", attribute="tier"), ColumnRule("nickname", attribute="nickname"),
              ColumnRule("score", attribute="score")]
    return ImportSpec(upload="importUploads/00000000-0000-0000-0000-000000000001",
                      csv=CsvOptions(null_values=("N/A", "-")), id_rule=IdRule(column="id", prefix="G-"),
                      columns=tuple(rules), mode=MODE_LENIENT, max_bad_rows=0, validate_only=False,
                      source_system="legacy-cif")


def job(work_dir: Path) -> worker.ImportJob:
    settings = worker.WorkerSettings("postgresql://unused/unused", SecretStr(f"k7:{KEY}"), "k7", SecretStr(INDEX_KEY))
    return worker.ImportJob(
        operation_id=uuid.UUID(int=18), upload_id=uuid.UUID(int=19), format=1, spec=spec(), settings=settings,
        work_dir=str(work_dir), actor="loader", trace_id="trace-18", stamp=STAMP,
        enum_values=conversion.ENUM_VALUES, enum_names=history_rules.ENUM_NAMES, definitions=DEFINITIONS,
        feed_payload=feed_payload, error_domain="profile.crm")


def row(**cells: str) -> list[str]:
    return [cells.get(name, "") for name in HEADER]


FULL = dict(type="individual", name="Li Wei", born="14/03/1985", sex="M", nationality="cn", doc_type="NATIONAL_ID",
            doc="11010519491231002x", doc_country="CN", phone="+8613812345678", email="Li.Wei@Example.com",
            region="CN", area="Beijing", city="Beijing", postal="100000", line1="1 Chang'an Ave", line2="Flat 2",
            job="teacher", kyc="VERIFIED", risk="BALANCED", rm="rm-007", branch="BJ01", lang="zh-CN",
            onboarded="2020-01-02", tier="gold", nickname="Xiao Li", score="700")
FIRST = [
    row(id="1", **FULL),
    row(id="2", type="ORGANISATION", name="Acme Ltd"),
    row(id="3", type="individual", name="Zhao Lei", born="31/02/1990", sex="X", phone="0771234"),
    row(id="4", type="individual", name="Qian Yu", nationality="china", doc_type="NATIONAL_ID",
        doc="110105194912310021", doc_country="CN", email="not-an-email"),
    None,  # a malformed line: too few cells
    row(id=" 6 ", type="CUSTOMER_TYPE_INDIVIDUAL", name="  Sun   Mei ", sex="F", email=" SUN@EXAMPLE.COM ",
        phone=" +8613900000000 ", region="CN", city="Shanghai"),
    row(id="7", type="individual", name="Zhou Jie", sex="?", kyc="N/A", risk="-", job="-", tier="silver"),
    row(id="8", type="individual", name="Wu Fan", city="Shenzhen", postal="518000"),
    row(id="9", type="individual", name="Zheng Hao", job="bell\x07ringer", rm="x" * 65),
    row(id="bad id!", type="individual", name="Feng Lan"),
    row(id="11", type="individual", name="Chen Bo", score="abc", nickname="Bo"),
    row(id="12", type="individual", name="Chu Yi", score="900"),
    row(id="13", type="individual", name="Wei Na", onboarded="2021-05-05", closed="2020-01-01", born="01/01/1890"),
    row(id="14", type="individual", name="Jiang Tao", region="CN", line1="y" * 201),
    row(id="", type="individual", name="Nobody"),
    row(id="16", type="individual", name="", doc="AB12", lang="not a tag", email="x@y"),
    row(id="17", type="nonsense", name="Han Xue", born="1985-01-01", doc_type="PASSPORT", doc="E1234567",
        doc_country="GB", risk="AGGRESSIVE", kyc="KYC_STATUS_REJECTED"),
]
# The same customers again: some values changed, cleared by value map, or left alone; a merged one.
SECOND = [
    row(id="1", **{**FULL, "job": "surgeon", "phone": "+8613800000001", "city": "Tianjin", "tier": "platinum",
                   "nickname": "Lao Li"}),
    row(id="2", type="ORGANISATION", name="Acme Ltd"),
    row(id="6", type="individual", name="Sun Mei", email="sun@example.com", region="CN", city="Shanghai", sex="?"),
    row(id="7", type="individual", name="Zhou Jie", kyc="VERIFIED", job="baker"),
    row(id="8", type="individual", name="Wu Fan", city="Shenzhen", postal="518000", email="bad"),
    row(id="17", type="individual", name="Han Xue", risk="CONSERVATIVE"),
    row(id="99", type="individual", name="New Person", phone="+8613700000000"),
]


def write(path: Path, rows: Sequence[list[str] | None]) -> None:
    lines = [",".join(HEADER)]
    for cells in rows:
        lines.append("9,only,three" if cells is None else ",".join(f'"{c}"' for c in cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def stage(the_job: worker.ImportJob, path: Path, current: dict[str, Customer]) -> tuple[worker._Stager, worker._Staged]:
    """One part, staged the way worker.stage stages each batch (without the database)."""
    layout = reading.plan_csv(path, the_job.spec.csv, parts=1, min_part_bytes=1)
    stager = worker._Stager(the_job, layout.columns)
    rows = list(reading.csv_rows(path, layout.parts[0], the_job.spec.csv, columns=len(layout.columns)))
    out = worker._Staged()
    stager.stage_batch(stager.read(rows), current, out)
    return stager, out


def opened(stager: worker._Stager, customer_id: str, context: str, sealed: bytes | None) -> Any:
    if sealed is None:
        return None
    key_id = stager.vault._keys.key_id_of(sealed)
    assert sealed[:2 + len(key_id)] == b"\x01" + bytes([len(key_id)]) + key_id.encode()
    return {"key": key_id, "clear": stager.vault.open_field(customer_id, context, sealed)}


def plain(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def payload_of(raw: bytes) -> dict[str, Any]:
    packed = any_pb2.Any.FromString(raw)
    message = customer_pb2.Customer()
    assert packed.Unpack(message)
    described = {"type_url": packed.type_url, "customer": json_format.MessageToDict(message)}
    if not message.attributes:  # no map field: the serialisation is deterministic, pin its bytes
        described["bytes"] = raw.hex()
    return described


def described(stager: worker._Stager, out: worker._Staged) -> dict[str, Any]:
    names = [c for c in worker.WORK_COLUMNS if c != "customer_id"] + (stager.row_columns or [])
    work = []
    for record in out.work:
        if record[1] in (INSERT, UPDATE):  # the stored columns follow
            fields = dict(zip(names, record, strict=True))
        else:
            fields = dict(zip(worker.WORK_COLUMNS, record, strict=True))
        cid = fields.get("customer_id")
        entry: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "payload" and value is not None:
                entry[name] = payload_of(value)
            elif name == "problems" and value is not None:
                entry[name] = value  # the JSON text itself, byte for byte
            elif name.endswith("_sealed"):
                entry[name] = opened(stager, cid, name.removesuffix("_sealed"), value)
            else:
                entry[name] = plain(value)
        work.append(entry)
    values = []
    for record in out.values:
        fields = dict(zip(VALUE_COLUMNS, record, strict=True))
        fields["value_sealed"] = opened(stager, fields["customer_id"], f"attributes.{fields['attribute_id']}",
                                        fields["value_sealed"])
        values.append({k: plain(v) for k, v in fields.items()})
    changes = []
    for record in out.changes:
        fields = dict(zip(CHANGE_COLUMNS, record, strict=True))
        for name in ("old_sealed", "new_sealed"):
            fields[name] = opened(stager, fields["customer_id"], f"history:{fields['field']}", fields[name])
        changes.append({k: plain(v) for k, v in fields.items()})
    return {"bad": out.bad, "row_columns": stager.row_columns, "work": work, "values": values, "changes": changes}


def stored_customers(stager: worker._Stager, out: worker._Staged) -> dict[str, Customer]:
    """The inserted customers as the database would give them back to a re-import."""
    names = [c for c in worker.WORK_COLUMNS if c != "customer_id"] + (stager.row_columns or [])
    found = {}
    for record in out.work:
        if record[1] != INSERT:
            continue
        fields = dict(zip(names, record, strict=True))
        fields.update(version=1, created_at=STAMP, updated_at=STAMP, attribute_values=None, external_id_values=None)
        customer = stager.stored.from_row(fields)
        customer.attributes = {v[2]: _value(stager, v) for v in out.values if v[1] == customer.customer_id}
        found[customer.customer_id] = customer
    return found


def _value(stager: worker._Stager, record: tuple[Any, ...]) -> AttributeValue:
    _, cid, key, text, number, _flag, _day, sealed = record
    definition = DEFINITIONS[key]
    if sealed is not None:
        return AttributeValue(definition.value_type, stager.vault.open_field(cid, f"attributes.{key}", sealed),
                              personal=True)
    if number is not None:
        return AttributeValue(definition.value_type, int(number))
    return AttributeValue(definition.value_type, text)


def test_staging_leaves_the_same_rows_errors_events_and_history(tmp_path: Path) -> None:
    the_job = job(tmp_path)
    write(tmp_path / "first.csv", FIRST)
    stager, first = stage(the_job, tmp_path / "first.csv", {})
    current = stored_customers(stager, first)
    current["G-2"].state = MERGED
    current["G-2"].merged_into = "customers/G-1"
    write(tmp_path / "second.csv", SECOND)
    later, second = stage(the_job, tmp_path / "second.csv", current)
    got = {"first": described(stager, first), "second": described(later, second)}
    text = json.dumps(got, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("CRM_WRITE_STAGING_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert json.loads(text) == json.loads(GOLDEN.read_text(encoding="utf-8"))


def test_the_golden_file_covers_every_outcome() -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    first, second = golden["first"], golden["second"]
    assert {w["action"] for w in first["work"]} == {INSERT, BAD}
    assert {w["action"] for w in second["work"]} == {INSERT, UPDATE, UNCHANGED, BAD}
    reasons = {p[2] for w in first["work"] + second["work"] if w["problems"] for p in json.loads(w["problems"])}
    assert {"INVALID_DATE", "UNKNOWN_ENUM_VALUE", "INVALID_FORMAT", "MALFORMED_ROW", "CUSTOMER_NOT_ACTIVE",
            "ATTRIBUTE_VALIDATION_FAILED"} <= reasons
    assert any(c["personal"] for c in second["changes"]) and any(not c["personal"] for c in second["changes"])
    assert any(v["value_sealed"] for v in first["values"])


def test_a_staged_row_holds_what_the_customer_repository_writes(tmp_path: Path) -> None:
    vault = job(tmp_path).settings.vault()
    customer = Customer(customer_id="G-1", customer_type=1, full_name="Li Wei", email="li@example.com",
                        address={"regionCode": "CN"}, birth_date=date(1985, 3, 14), occupation="teacher")
    staged = dict(zip(STORED_COLUMNS, StoredCustomers(vault).to_values(customer), strict=True))
    written = {"customer_id": "G-1", **CustomerRepository(vault)._to_row(customer)}
    assert list(staged) == list(written)
    sealed = [c for c in written if c.endswith("_sealed")]
    assert {c: v for c, v in staged.items() if c not in sealed} == {c: v for c, v in written.items() if c not in sealed}
    for column in sealed:  # fresh nonces: equal once opened
        opened_pair = [vault.open_field("G-1", column.removesuffix("_sealed"), row[column]) if row[column] else None
                       for row in (staged, written)]
        assert opened_pair[0] == opened_pair[1]
