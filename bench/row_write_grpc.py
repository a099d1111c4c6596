"""The profile-get create floor: a bare grpc.aio server whose one method stores a new customer row
with its audit record and its change-feed event in one transaction with asyncpg. No interceptors,
no authentication, no validation, no encryption (the rows are sealed at start-up), no message
building: the necessary work of a creation (a gRPC call, the three rows committed together, and
the `changes` audit chain's lock and tail that every change takes), done with the fastest
primitives, on the same tables and pool size as the service.

Run as its own process: `python -m bench.row_write_grpc --port N --database-url URL
[--pool-size P]`, stopped by SIGTERM. Method `/bench.RowWrite/Create`: request = a customer id not
yet taken, as UTF-8; response = the stored row's column values as text.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc

from bench.bare_grpc import database_floor_main
from bench.customers import synthetic_customers
from crm_profile.api.customer_messages import to_domain
from crm_profile.customers import rules
from crm_profile.customers.tables import customer as customer_table
from crm_profile.customers.vault import PersonalDataVault
from crmkit.audit import _CHAIN_LOCK_KEY as CHAIN_LOCK_KEY
from crmkit.audit import _COLUMNS as AUDIT_COLUMNS
from crmkit.audit import GENESIS_HASH, RECIPE, AuditEntry, record_hash
from crmkit.crypto import BlindIndex, KeyRing

METHOD = "/bench.RowWrite/Create"
# Sealed rows made at start-up and taken in turn: more than a bench run creates, so that the blind
# indexes see distinct values as they do for real customers.
ROWS = 4_000
# The floor's own audit chain, under the lock every writer of the `changes` chain takes: the same
# serialisation as the service's, without mixing its records into the service's chain.
CHAIN = "floor:changes"
# Every column but those the database fills in (the version and the two times).
CUSTOMER_COLUMNS = [c.name for c in customer_table.columns if c.name not in {"version", "created_at", "updated_at"}]
OUTBOX_COLUMNS = ("event_id", "resource_type", "resource_name", "change_type", "payload", "actor")


def _placeholders(start: int, count: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + count))


_AUDIT_START = len(CUSTOMER_COLUMNS) + 1
_OUTBOX_START = _AUDIT_START + len(AUDIT_COLUMNS)
# The three rows in one statement (one round trip), inside the transaction that took the lock.
INSERT = (
    f"WITH stored AS (INSERT INTO customer ({', '.join(CUSTOMER_COLUMNS)})"  # noqa: S608 (fixed names)
    f" VALUES ({_placeholders(1, len(CUSTOMER_COLUMNS))}) RETURNING *),"
    f" audited AS (INSERT INTO audit_record ({', '.join(AUDIT_COLUMNS)})"
    f" VALUES ({_placeholders(_AUDIT_START, len(AUDIT_COLUMNS))})),"
    f" announced AS (INSERT INTO outbox_event ({', '.join(OUTBOX_COLUMNS)})"
    f" VALUES ({_placeholders(_OUTBOX_START, len(OUTBOX_COLUMNS))}))"
    " SELECT * FROM stored"
)
# Two statements, as crmkit.audit's: the tail must be read by a statement begun after the lock was
# granted (READ COMMITTED takes a statement's snapshot when it starts), or a record committed
# while this one waited for the lock would be missed and the chain would fork.
LOCK = "SELECT pg_advisory_xact_lock($1)"
TAIL = "SELECT hash FROM audit_record WHERE chain_id = $1 ORDER BY seq DESC LIMIT 1"


def sealed_rows(count: int) -> list[list[Any]]:
    """Stored customer rows (CUSTOMER_COLUMNS order, customer id first) of synthetic customers,
    sealed with a fresh key as the service seals them."""
    vault = PersonalDataVault(KeyRing({"floor": os.urandom(32)}, active_key_id="floor"), BlindIndex(os.urandom(32)))
    today = datetime.now(UTC).date()
    rows = []
    for message in synthetic_customers(count, seed=23, id_prefix="FLOORSEED"):
        customer = rules.normalise(to_domain(message)).replace(onboarded_on=today, source_system="crm")
        values = {**vars(customer), **vault.seal(customer)}
        rows.append([values[column] for column in CUSTOMER_COLUMNS])
    return rows


def row_writer(pool: asyncpg.Pool, rows: list[list[Any]]) -> grpc.GenericRpcHandler:
    taken = 0
    payload = b"\x0a\x00"  # a small encoded Any: the masked message is the service's work, not the floor's

    async def create(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        nonlocal taken
        customer_id = request.decode()
        row = rows[taken % len(rows)]
        taken += 1
        name = f"customers/{customer_id}"
        entry = AuditEntry(principal="floor", action="customer.create", resource_name=name,
                           purpose="DATA_MANAGEMENT", actor_roles=("relationship_manager",), method=METHOD)
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(LOCK, CHAIN_LOCK_KEY)
            prev = await connection.fetchval(TAIL, CHAIN) or GENESIS_HASH
            now = datetime.now(UTC)
            digest = record_hash(prev, now, entry, chain_id=CHAIN)
            stored = await connection.fetchrow(
                INSERT, customer_id, *row[1:],
                CHAIN, now, entry.principal, entry.action, name, entry.purpose, "", "", list(entry.actor_roles),
                METHOD, [], "ALLOWED", RECIPE, prev, digest,
                uuid.uuid4(), "crm.profile.v1.Customer", name, 1, payload, entry.principal)
        return "\x1f".join(str(value) for value in stored.values()).encode()

    return grpc.method_handlers_generic_handler("bench.RowWrite", {
        "Create": grpc.unary_unary_rpc_method_handler(create)})


def main() -> None:
    database_floor_main("python -m bench.row_write_grpc", __doc__,
                        lambda pool: row_writer(pool, sealed_rows(ROWS)))


if __name__ == "__main__":
    main()
