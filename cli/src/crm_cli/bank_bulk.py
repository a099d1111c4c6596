"""The synthetic bank through profile's bulk paths, as a data engineer loads a large book.

The same bank as `bank_loader.load` (the same seed and size give the same customers, holdings,
consents and events), loaded in phases:

1. **files**: the customers and their mobile-app duplicates are written as two CSV files, one
   column per import target (`CUSTOMER_COLUMNS`), beside a mapping generated from the same list
   (`mapping()`), so the file and its mapping cannot drift apart;
2. **customers**, **duplicates**: each file is uploaded (`UploadImportFile`) and imported
   (`ImportCustomers`, lenient), its operation followed to the end. A row whose customer exists
   with the same values is `unchanged` (reported as existing), so a second load writes nothing;
3. **events**: one `IngestEvents` client stream per chunk of customers (batches of 1,000), the
   chunks generated one after another so a large bank never sits in memory;
4. **per-call writes**, beside the events: profile has no bulk RPC for holdings or consents, and
   the import contract has no target for a customer's ids in other systems, so `CreateHolding`
   (one per holding), `RecordConsent` (one per customer) and `UpdateCustomer` (mask
   `external_ids`, only for customers that lack them: when the import found customers already
   there, `ListCustomers` in pages of 1,000 tells which) run from a queue the chunks feed,
   `CONCURRENCY` in flight. One call per write is slow (8 to 16 a second measured on a loaded
   2-core machine), so on a large bank they finish long after the customers and events are in.

Rows the import refused are reported (line and customer id, never a value) and their holdings,
consents and events are left out, as the per-call path leaves out refused customers.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from google.protobuf import field_mask_pb2
from google.type import date_pb2

from crm.common.v1 import operation_pb2
from crm.profile.v1 import customer_pb2, import_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_cli import bank_loader, demo_data, imports, synthetic_bank
from crm_cli.operations import SERVICES, watch

# Above this many customers `crm demo load` takes the bulk path (`--method auto`): below it the
# per-call path is quick enough, and `make run`'s small bank keeps loading as it always has.
THRESHOLD = 5000
CONCURRENCY = 16
CHUNK = 1000  # customers per holdings/consents/events round (one IngestEvents stream each)
LIST_PAGE = 1000
SOURCE_SYSTEM = "demo-bank"
IMPORT_WAIT_SECONDS = 3600.0
Metadata = Sequence[tuple[str, str]]


def _day(value: date_pb2.Date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _enum(enum: object, field: str) -> Callable[[customer_pb2.Customer], str]:
    def cell(customer: customer_pb2.Customer) -> str:
        number = getattr(customer, field)
        return enum.Name(number) if number else ""  # type: ignore[attr-defined]
    return cell


def _text(path: str) -> Callable[[customer_pb2.Customer], str]:
    parent, _, leaf = path.rpartition(".")

    def cell(customer: customer_pb2.Customer) -> str:
        message = getattr(customer, parent) if parent else customer
        return str(getattr(message, leaf))
    return cell


def _date(path: str) -> Callable[[customer_pb2.Customer], str]:
    parent, _, leaf = path.rpartition(".")

    def cell(customer: customer_pb2.Customer) -> str:
        message = getattr(customer, parent) if parent else customer
        return _day(getattr(message, leaf)) if message.HasField(leaf) else ""  # type: ignore[arg-type] # a path
    return cell


def _address_line(customer: customer_pb2.Customer) -> str:
    lines = customer.address.address_lines
    if len(lines) > 1:  # one column carries one line; the generator writes one
        raise ValueError(f"{customer.customer_id}: address.address_lines has {len(lines)} lines, the file one")
    return lines[0] if lines else ""


# Column (named after its import target) -> the cell of a customer. Every field the generator
# sets but `external_ids`, which the import contract cannot set (phase 3).
CUSTOMER_COLUMNS: tuple[tuple[str, Callable[[customer_pb2.Customer], str]], ...] = (
    ("customer_type", _enum(customer_pb2.CustomerType, "customer_type")),
    ("full_name", _text("full_name")),
    ("birth_date", _date("birth_date")),
    ("gender", _enum(customer_pb2.Gender, "gender")),
    ("nationality", _text("nationality")),
    ("id_document.type", lambda c: customer_pb2.IdDocumentType.Name(c.id_document.type)
     if c.id_document.type else ""),
    ("id_document.number", _text("id_document.number")),
    ("id_document.issuing_country", _text("id_document.issuing_country")),
    ("id_document.expires_on", _date("id_document.expires_on")),
    ("mobile_phone", _text("mobile_phone")),
    ("email", _text("email")),
    ("address.region_code", _text("address.region_code")),
    ("address.postal_code", _text("address.postal_code")),
    ("address.administrative_area", _text("address.administrative_area")),
    ("address.locality", _text("address.locality")),
    ("address.sublocality", _text("address.sublocality")),
    ("address.address_lines", _address_line),
    ("occupation", _text("occupation")),
    ("kyc_status", _enum(customer_pb2.KycStatus, "kyc_status")),
    ("risk_tolerance", _enum(customer_pb2.RiskTolerance, "risk_tolerance")),
    ("relationship_manager_id", _text("relationship_manager_id")),
    ("branch_id", _text("branch_id")),
    ("onboarded_on", _date("onboarded_on")),
    ("closed_on", _date("closed_on")),
    ("preferred_language", _text("preferred_language")),
)
ID_COLUMN = "customer_id"


def mapping() -> import_pb2.ImportCustomersRequest:
    """The import request for a file of `write_customers` (without its upload)."""
    return import_pb2.ImportCustomersRequest(
        csv_options=import_pb2.CsvOptions(delimiter=","), mode=import_pb2.IMPORT_MODE_LENIENT,
        source_system=SOURCE_SYSTEM,
        mapping=import_pb2.ImportMapping(
            customer_id=import_pb2.CustomerIdMapping(column=ID_COLUMN),
            columns=[import_pb2.ColumnMapping(column=name, field=name) for name, _ in CUSTOMER_COLUMNS]))


def write_customers(path: Path, customers: Iterable[customer_pb2.Customer]) -> list[str]:
    """One CSV row per customer (UTF-8, a header line); the ids in row order (line 2 onwards)."""
    ids: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as file:
        out = csv.writer(file)
        out.writerow([ID_COLUMN, *(name for name, _ in CUSTOMER_COLUMNS)])
        for customer in customers:
            out.writerow([customer.customer_id, *(cell(customer) for _, cell in CUSTOMER_COLUMNS)])
            ids.append(customer.customer_id)
    return ids


class Phases(Protocol):
    """Where the loader shows its progress: one bar per phase."""

    def start(self, name: str, total: int | None) -> object: ...

    def advance(self, phase: object, amount: int) -> None: ...

    def update(self, phase: object, *, done: int, total: int | None) -> None: ...


@dataclass
class _Clock:
    result: bank_loader.BankLoadResult
    name: str
    started: float = 0.0

    def __enter__(self) -> _Clock:
        self.started = time.monotonic()
        return self

    def done(self, items: int) -> None:
        self.result.phases[self.name] = (items, time.monotonic() - self.started)

    def __exit__(self, *exc: object) -> None:
        self.result.phases.setdefault(self.name, (0, time.monotonic() - self.started))


async def load(channel: grpc.aio.Channel, token: str, count: int, *, seed: int, folder: Path,
               phases: Phases) -> bank_loader.BankLoadResult:
    """Load the first `count` customers of `seed`'s bank, writing its files into `folder`."""
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),)
    result = bank_loader.BankLoadResult()
    external: dict[str, list[customer_pb2.ExternalId]] = {}

    with _Clock(result, "files") as clock:
        bar = phases.start("write files", count)
        twins: list[tuple[str, customer_pb2.Customer]] = []  # (the customer's id, their mobile-app twin)

        def primaries() -> Iterator[customer_pb2.Customer]:
            for index, customer in enumerate(demo_data.customers(count, seed=seed), start=1):
                external[customer.customer_id] = list(customer.external_ids)
                if demo_data.has_duplicate(customer, index):
                    twins.append((customer.customer_id, demo_data.mobile_duplicate(customer, index, seed)))
                phases.advance(bar, 1)
                yield customer

        customer_ids = write_customers(folder / "customers.csv", primaries())
        clock.done(count)

    refused = await _import_file(stub, metadata, folder / "customers.csv", customer_ids, result.customers, result,
                                 phases, name="customers")
    # As on the per-call path, a refused customer's twin is not registered either.
    twins = [(of, twin) for of, twin in twins if of not in refused]
    for _, twin in twins:
        external[twin.customer_id] = list(twin.external_ids)
    twin_ids = write_customers(folder / "duplicates.csv", (twin for _, twin in twins))
    if twin_ids:
        refused |= await _import_file(stub, metadata, folder / "duplicates.csv", twin_ids, result.duplicates,
                                      result, phases, name="duplicates")
    existed = result.customers.existing + result.duplicates.existing > 0

    await _the_rest(stub, metadata, count=count, seed=seed, external=external, refused=refused, existed=existed,
                    result=result, phases=phases)
    return result


async def _import_file(stub: profile_service_pb2_grpc.ProfileServiceStub, metadata: Metadata, path: Path,
                       ids: list[str], counts: demo_data.LoadResult, result: bank_loader.BankLoadResult,
                       phases: Phases, *, name: str) -> set[str]:
    """Upload and import one file of customers (`ids` in row order) into `counts`; the ids refused."""
    with _Clock(result, name) as clock:
        outcome = await _import(stub, metadata, path, name, phases)
        if outcome is None:
            counts.failed.append((name, "FAILED", f"the import of {path.name} did not succeed"))
            return set(ids)
        counts.created += outcome.inserted_count
        counts.existing += outcome.updated_count + outcome.unchanged_count
        refused: set[str] = set()
        for bad in outcome.bad_rows:  # one entry per bad field: one failure per customer
            customer_id = ids[bad.line - 2] if 2 <= bad.line < len(ids) + 2 else f"line {bad.line}"
            if customer_id not in refused:
                counts.failed.append((customer_id, bad.reason, f"{bad.field}: {bad.description}"))
                refused.add(customer_id)
        clock.done(len(ids))
    return refused


async def _import(stub: profile_service_pb2_grpc.ProfileServiceStub, metadata: Metadata, path: Path, name: str,
                  phases: Phases) -> import_pb2.ImportCustomersResult | None:
    """Upload the file and import it; the result, or None when the import failed."""
    local = imports.inspect(path)
    bar = phases.start(f"upload {path.name}", local.size)
    upload = await imports.upload(stub, local, file_format=import_pb2.IMPORT_FILE_FORMAT_CSV, metadata=metadata,
                                  on_bytes=lambda sent: phases.advance(bar, sent))
    request = mapping()
    request.upload = upload.name
    request.request_id = str(uuid.uuid4())  # a new import each load: its counts say what this load did
    operation = await imports.start(stub, request, metadata=metadata)
    bar = phases.start(f"import {name}", None)
    final = await watch(SERVICES["profile"], stub, metadata=metadata, name=operation.name,
                        seconds=IMPORT_WAIT_SECONDS,
                        on_update=lambda op: phases.update(bar, done=op.progress.done, total=op.progress.total or None))
    if final.state != operation_pb2.OPERATION_STATE_SUCCEEDED:
        return None
    return imports.result_of(final)


def _same_ids(a: Iterable[customer_pb2.ExternalId], b: Iterable[customer_pb2.ExternalId]) -> bool:
    return sorted((e.source_system, e.id) for e in a) == sorted((e.source_system, e.id) for e in b)


async def _lacking(stub: profile_service_pb2_grpc.ProfileServiceStub, metadata: Metadata,
                   wanted: dict[str, list[customer_pb2.ExternalId]], phases: Phases
                   ) -> dict[str, list[customer_pb2.ExternalId]]:
    """Those of `wanted` whose stored external ids differ (ListCustomers, every page)."""
    bar = phases.start("check external ids", len(wanted))
    lacking = dict(wanted)
    token = ""
    while True:
        page = await stub.ListCustomers(profile_service_pb2.ListCustomersRequest(
            page_size=LIST_PAGE, page_token=token, audit=bank_loader.AUDIT),
            metadata=metadata, timeout=bank_loader.TIMEOUT_SECONDS)
        for customer in page.customers:
            want = lacking.get(customer.customer_id)
            if want is not None and _same_ids(want, customer.external_ids):
                del lacking[customer.customer_id]
                phases.advance(bar, 1)
        token = page.next_page_token
        if not token:
            return lacking


async def _the_rest(stub: profile_service_pb2_grpc.ProfileServiceStub, metadata: Metadata, *, count: int, seed: int,
                    external: dict[str, list[customer_pb2.ExternalId]], refused: set[str], existed: bool,
                    result: bank_loader.BankLoadResult, phases: Phases) -> None:
    """Events through IngestEvents streams (one per chunk of customers), while CONCURRENCY workers
    make the per-call writes (external ids, holdings, consents) from a queue the chunks feed: the
    bulk part does not wait for the much slower per-call part."""
    writer = bank_loader.Writer(stub, metadata, result, concurrency=CONCURRENCY)
    work: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
    queued = done = 0
    calls = phases.start("per-call writes", None)
    counts = {"external ids": 0, "holdings": 0, "consent calls": 0}

    def enqueue(kind: str, write: Callable[[], Awaitable[None]]) -> None:
        nonlocal queued
        work.put_nowait(write)
        queued += 1
        counts[kind] += 1
        phases.update(calls, done=done, total=queued)

    async def worker() -> None:
        nonlocal done
        while (write := await work.get()) is not None:
            await write()
            done += 1
            phases.update(calls, done=done, total=queued)

    started = time.monotonic()
    workers = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
    wanted = {customer_id: ids for customer_id, ids in external.items() if customer_id not in refused}
    if existed:
        wanted = await _lacking(stub, metadata, wanted, phases)
    for customer_id, ids in wanted.items():
        enqueue("external ids", functools.partial(_set_external_ids, stub, metadata, customer_id, ids, result))

    bar = phases.start("events", count)
    events = 0
    for chunk in bank_loader.chunks(synthetic_bank.generate(count, seed=seed), CHUNK):
        present = [who for who in chunk if who.customer.customer_id not in refused]
        for who in present:
            for held in who.holdings:
                enqueue("holdings", functools.partial(writer.holding, who, held))
            if who.consents:
                enqueue("consent calls", functools.partial(writer.consents, who))
        stream = [event for who in present for event in who.events]
        await bank_loader.ingest(stub, metadata, stream, result)
        events += len(stream)
        for who in present:
            who.events = []  # ingested; the queue keeps the customer for its holdings and consents
        bank_loader.pend_feedback(result, present)
        phases.advance(bar, len(chunk))
    result.phases["events"] = (events, time.monotonic() - started)
    for _ in workers:
        work.put_nowait(None)
    await asyncio.gather(*workers)
    # The per-call writes share one pool: each kind's count over the pool's whole time.
    seconds = time.monotonic() - started
    for kind, items in counts.items():
        result.phases[kind] = (items, seconds)


async def _set_external_ids(stub: profile_service_pb2_grpc.ProfileServiceStub, metadata: Metadata, customer_id: str,
                            ids: list[customer_pb2.ExternalId], result: bank_loader.BankLoadResult) -> None:
    request = profile_service_pb2.UpdateCustomerRequest(
        customer=customer_pb2.Customer(name=f"customers/{customer_id}", external_ids=ids),
        update_mask=field_mask_pb2.FieldMask(paths=["external_ids"]), audit=bank_loader.AUDIT)
    try:
        await stub.UpdateCustomer(request, metadata=metadata, timeout=bank_loader.TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as error:
        result.failed.append((f"external ids of customers/{customer_id}", error.code().name, error.details() or ""))
