"""All SQL about customer events.

Never commits: the ingest batch's transaction is the caller's (`EventIngest`), and so is its
commit.

The ingest path is the hottest write of the service (tens of thousands of events a second), so
it runs on a plain asyncpg connection, one transaction per batch, set-wise: the id ledger is
claimed with one `INSERT ... SELECT FROM unnest(...)`, the events are written with binary COPY,
and so are their change-feed rows, into a per-connection staging table first.

Why staging for the feed: binary COPY is the cheapest way to send the feed rows, and the kit's
bulk append (`crmkit.outbox.bulk_append`) takes its rows from a SELECT, here over the staging
table (`prepare`, `publish`). The append takes no lock, so concurrent batches do not queue on it.

Partition maintenance (`MonthPartitions`): `customer_event` is partitioned by RANGE on
`occur_time`, one partition per UTC month, named `customer_event_pYYYY_MM`. There is no default
partition (a row with no partition fails loudly instead of piling up somewhere that a later
`CREATE ... PARTITION OF` would have to scan). Partitions are created on demand, before the
transaction of the first batch that touches their month, in a short transaction of their own
under an advisory lock (so replicas racing for the same month do not collide); each process
remembers which months exist. At start-up the current and next month are created, so the
month boundary needs no DDL on the hot path. Creating a partition briefly takes an ACCESS
EXCLUSIVE lock on the parent, which waits for in-flight ingest transactions (milliseconds).
Old months are removed by the retention purge with `DROP TABLE customer_event_pYYYY_MM` (instant,
no vacuum) once every event in them is past its class's retention, after deleting their ids
from `customer_event_id` (`DELETE ... WHERE event_id IN (SELECT event_id FROM <partition>)`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa

from crm_profile.customers.model import MERGED
from crm_profile.events import rules
from crm_profile.events.model import Application, Event, EventFilter, Login, Transaction
from crm_profile.holdings import money
from crm_profile.holdings.model import CustomerRef
from crm_profile.identity.model import MERGE_ACTIVE
from crmkit import outbox
from crmkit.db import UnitOfWork
from crmkit.outbox import ChangeType

COLUMNS = (
    "customer_id", "occur_time", "event_id", "event_type", "channel", "ingest_time", "source_system", "branch_id",
    "product_code", "currency", "amount_minor", "direction", "transaction_kind", "holding_id", "balance_after_minor",
    "merchant_category_code", "application_id", "application_outcome", "login_success", "login_method",
    "properties", "original_customer_id",
)
TABLE = "customer_event"
EVENT_RESOURCE_TYPE = "crm.profile.v1.CustomerEvent"
_PARTITION_LOCK_KEY = 0x43524D455650  # "CRMEVP": one creator of partitions at a time, per database
_PARTITION_NAME = re.compile(rf"{TABLE}_p([0-9]{{4}})_([0-9]{{2}})")
# Lists of ids travel as one string split by the server: asyncpg checks every element of an
# array parameter with an abstract-class isinstance, which costs more than the rest of its
# encoding. The separator (ASCII unit separator) cannot occur in ids: the rules allow printable
# ASCII in event ids and `A-Z a-z 0-9 _ -` in customer ids.
SEPARATOR = "\x1f"  # chr(31) in the SQL

FEED_STAGING = "customer_event_feed"
FEED_COLUMNS = ("resource_name", "payload", "actor", "trace_id")
# One round trip: the connection's staging table for feed rows (emptied at each commit).
_PREPARE = f"""
    SET LOCAL client_min_messages = warning;
    CREATE TEMPORARY TABLE IF NOT EXISTS {FEED_STAGING} (
        resource_name text NOT NULL, payload bytea NOT NULL, actor text NOT NULL, trace_id text NOT NULL
    ) ON COMMIT DELETE ROWS
"""
# The batch's customers marked for the feature refresher (see crm_profile.features.service).
_MARK_FEATURES = f"""
    INSERT INTO customer_feature_mark (customer_ids)
    SELECT array_agg(split_part(resource_name, '/', 2)) FROM {FEED_STAGING} HAVING count(*) > 0
"""  # noqa: S608 - built from this module's constants only
# The staged rows as the outbox's bulk append wants them. The staging table is filled by one COPY
# per transaction and emptied at commit, so a scan yields its rows in the order they were sent.
_STAGED_FEED = (f"SELECT '{EVENT_RESOURCE_TYPE}', resource_name, "  # noqa: S608 - this module's constants only
                f"{int(ChangeType.CHANGE_TYPE_EVENT)}::smallint, payload, actor, trace_id FROM {FEED_STAGING}")
# The ids that were new, as an array; NULL when all were (the usual case: no row per id comes back).
_CLAIM_IDS = """
    WITH claimed AS (
        INSERT INTO customer_event_id (event_id)
        SELECT event_id FROM unnest(string_to_array($1::text, chr(31))) AS sent (event_id)
        ORDER BY event_id
        ON CONFLICT (event_id) DO NOTHING
        RETURNING event_id
    )
    SELECT CASE WHEN count(*) = $2 THEN NULL ELSE coalesce(array_agg(event_id), '{}') END FROM claimed
"""
# All the ids new (the usual case): a plain insert, in sorted order like _CLAIM_IDS.
_CLAIM_NEW_IDS = """
    INSERT INTO customer_event_id (event_id)
    SELECT event_id FROM unnest(string_to_array($1::text, chr(31))) AS sent (event_id) ORDER BY event_id
"""
# Each sent customer id that exists -> the customer at the end of its merge chain, and its state.
_FILING = """
    WITH RECURSIVE sent (customer_id) AS (SELECT unnest(string_to_array($1::text, chr(31)))),
    chain (sent_id, customer_id, state, merged_into, depth) AS (
        SELECT customer.customer_id, customer.customer_id, customer.state, customer.merged_into, 0
        FROM sent JOIN customer ON customer.customer_id = sent.customer_id
        UNION ALL
        SELECT chain.sent_id, customer.customer_id, customer.state, customer.merged_into, chain.depth + 1
        FROM chain JOIN customer ON customer.customer_id = substr(chain.merged_into, length('customers/') + 1)
        WHERE chain.state = $2 AND chain.depth < 16
    )
    SELECT DISTINCT ON (sent_id) sent_id, customer_id, state FROM chain ORDER BY sent_id, depth DESC
"""
# The customer and every customer merged into it (transitively) while the merge is in force.
_MERGED_INTO = """
    WITH RECURSIVE merged (customer_id) AS (
        SELECT CAST(:customer_id AS text)
        UNION
        SELECT customer_merge.source_id
        FROM customer_merge JOIN merged ON customer_merge.survivor_id = merged.customer_id
        WHERE customer_merge.state = :active
    )
    SELECT customer_id FROM merged
"""
_EXISTING_MONTHS = """
    SELECT child.relname FROM pg_inherits
    JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
    JOIN pg_class child ON child.oid = pg_inherits.inhrelid
    WHERE parent.relname = 'customer_event' AND parent.relnamespace = to_regnamespace(current_schema())
"""


# One encoder for every row: `json.dumps` with options builds a new encoder per call.
_to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _record(event: Event) -> tuple[Any, ...]:
    """The event as a row of COLUMNS, for COPY."""
    tx, application, login = event.transaction, event.application, event.login
    currency = amount = direction = kind = holding_id = balance_after = mcc = None
    if tx is not None:
        assert tx.amount is not None
        currency, amount = tx.amount.currency_code, money.to_minor(tx.amount)
        direction, kind = tx.direction, tx.kind
        holding_id = tx.holding_id or None
        balance_after = money.to_minor(tx.balance_after) if tx.balance_after is not None else None
        mcc = tx.merchant_category_code or None
    return (
        event.customer_id, event.occur_time, event.event_id, event.event_type, event.channel, event.ingest_time,
        event.source_system, event.branch_id or None, event.product_code or None, currency, amount, direction, kind,
        holding_id, balance_after, mcc,
        application.application_id if application is not None else None,
        application.outcome if application is not None else None,
        login.success if login is not None else None,
        (login.method or None) if login is not None else None,
        _to_json(event.properties) if event.properties else None,
        event.original_customer_id or None,
    )


def _from_row(row: Any) -> Event:
    currency = row["currency"]
    transaction = application = login = None
    if currency is not None:
        balance_after = row["balance_after_minor"]
        holding_id = row["holding_id"]
        transaction = Transaction(
            amount=money.from_minor(currency, row["amount_minor"]), direction=row["direction"],
            kind=row["transaction_kind"],
            holding=f"customers/{row['customer_id']}/holdings/{holding_id}" if holding_id else "",
            balance_after=money.from_minor(currency, balance_after) if balance_after is not None else None,
            merchant_category_code=row["merchant_category_code"] or "")
    if row["application_id"] is not None:
        application = Application(row["application_id"], row["application_outcome"])
    if row["login_success"] is not None:
        login = Login(row["login_success"], row["login_method"] or "")
    properties = row["properties"]
    return Event(
        event_id=row["event_id"], customer=f"customers/{row['customer_id']}", event_type=row["event_type"],
        channel=row["channel"], occur_time=row["occur_time"], source_system=row["source_system"],
        branch_id=row["branch_id"] or "", product_code=row["product_code"] or "", transaction=transaction,
        application=application, login=login,
        properties=json.loads(properties) if isinstance(properties, str) else dict(properties or {}),
        customer_id=row["customer_id"], ingest_time=row["ingest_time"],
        original_customer_id=row["original_customer_id"] or "",
    )


def partition_name(month: date) -> str:
    return f"{TABLE}_p{month.year:04d}_{month.month:02d}"


class IdsTaken(Exception):
    """An id of the batch is in the ledger already: the batch holds duplicates."""


class EventRepository:
    async def customer(self, uow: UnitOfWork, customer_id: str) -> CustomerRef | None:
        row = (await uow.execute(sa.text(
            "SELECT customer_id, relationship_manager_id, onboarded_on, closed_on, state, merged_into FROM customer "
            "WHERE customer_id = :customer_id"), {"customer_id": customer_id})).first()
        return CustomerRef(**row._mapping) if row is not None else None

    async def filing(self, connection: asyncpg.Connection, customer_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """For each of `customer_ids` that exists: the customer its events are filed under (itself,
        or the survivor at the end of its merge chain) and that customer's state."""
        # Joins, not `= ANY($1)`: with a parameter array PostgreSQL compares every row with every
        # element (no hashing), which costs more than the rest of a 1,000-event batch.
        rows = await connection.fetch(_FILING, SEPARATOR.join(customer_ids), MERGED)
        return {sent: (customer_id, state) for sent, customer_id, state in rows}

    async def merged_into(self, uow: UnitOfWork, customer_id: str) -> list[str]:
        """`customer_id` and the customers merged into it, whose events it shows as its own."""
        rows = await uow.execute(sa.text(_MERGED_INTO), {"customer_id": customer_id, "active": MERGE_ACTIVE})
        return [row[0] for row in rows]

    async def claim_ids(self, connection: asyncpg.Connection, events: Sequence[Event]) -> set[str]:
        """Record the events' ids in the ledger; the ids that were new (the others are duplicates).

        Ids are claimed in sorted order, so two batches claiming overlapping ids lock them in the
        same order and wait for each other instead of deadlocking.
        """
        ids = [e.event_id for e in events]
        fresh = await connection.fetchval(_CLAIM_IDS, SEPARATOR.join(ids), len(ids))
        return set(ids if fresh is None else fresh)

    async def claim_new_ids(self, connection: asyncpg.Connection, events: Sequence[Event]) -> None:
        """Record the events' ids in the ledger, all of them new; IdsTaken when one was not (the
        batch's transaction is then aborted: roll it back and claim with `claim_ids`)."""
        try:
            await connection.execute(_CLAIM_NEW_IDS, SEPARATOR.join([e.event_id for e in events]))
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise IdsTaken from exc

    async def append(self, connection: asyncpg.Connection, events: Iterable[Event]) -> None:
        await connection.copy_records_to_table(TABLE, columns=COLUMNS, records=[_record(e) for e in events])

    async def prepare(self, connection: asyncpg.Connection) -> None:
        """Ready the connection's staging table for one batch; inside the batch's transaction."""
        await connection.execute(_PREPARE)

    async def publish(self, connection: asyncpg.Connection, changes: Sequence[tuple[str, bytes]], *,
                      actor: str, trace_id: str) -> None:
        """Append `CustomerEvent` changes (resource name, packed payload) to the change feed, in
        order, and mark their customers for the feature refresher; inside the batch's transaction
        (after `prepare`), which the caller commits."""
        await connection.copy_records_to_table(
            FEED_STAGING, columns=FEED_COLUMNS, records=[(name, payload, actor, trace_id) for name, payload in changes])
        await connection.execute(_MARK_FEATURES)
        await outbox.bulk_append(connection, _STAGED_FEED)

    async def page(
        self, uow: UnitOfWork, *, customer_ids: Sequence[str], narrowing: EventFilter,
        after: tuple[datetime, str] | None, limit: int,
    ) -> list[Event]:
        """The events of `customer_ids` (a customer and those merged into it), newest `occur_time`
        first, ties by `event_id`."""
        args: dict[str, Any] = {}

        def arg(value: Any) -> str:
            name = f"p{len(args)}"
            args[name] = value
            return f":{name}"

        # One customer (the usual case) as `=`, so the index scan returns rows already in order.
        conditions = ([f"customer_id = {arg(customer_ids[0])}"] if len(customer_ids) == 1 else
                      [f"customer_id = ANY(CAST({arg(list(customer_ids))} AS text[]))"])

        if narrowing.event_types:
            conditions.append(f"event_type = ANY(CAST({arg(list(narrowing.event_types))} AS smallint[]))")
        if narrowing.channels:
            conditions.append(f"channel = ANY(CAST({arg(list(narrowing.channels))} AS smallint[]))")
        if narrowing.occur_from is not None:
            conditions.append(f"occur_time >= {arg(narrowing.occur_from)}")
        if narrowing.occur_to is not None:
            conditions.append(f"occur_time < {arg(narrowing.occur_to)}")
        if after is not None:
            at, event_id = arg(after[0]), arg(after[1])
            conditions.append(f"occur_time <= {at} AND (occur_time < {at} OR event_id > {event_id})")
        sql = (f"SELECT * FROM {TABLE} WHERE {' AND '.join(conditions)} "  # noqa: S608 - fixed fragments
               f"ORDER BY occur_time DESC, event_id LIMIT {int(limit)}")
        return [_from_row(row._mapping) for row in await uow.execute(sa.text(sql), args)]


class MonthPartitions:
    """Creates the month partitions of `customer_event` on demand; remembers which exist."""

    def __init__(self) -> None:
        self._known: set[date] | None = None

    def all_known(self, months: Iterable[date]) -> bool:
        """Whether every month is known to have its partition (no database round trip)."""
        return self._known is not None and self._known.issuperset(months)

    async def ensure(self, connection: asyncpg.Connection, months: Iterable[date]) -> list[date]:
        """Create the partitions of `months` that do not exist yet (in their own transaction:
        call this outside the batch's unit of work); the months created."""
        if self._known is None:
            self._known = await self._existing(connection)
        missing = sorted(set(months) - self._known)
        if not missing:
            return []
        created = []
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _PARTITION_LOCK_KEY)
            existing = await self._existing(connection)
            for month in missing:
                if month not in existing:
                    await connection.execute(
                        f"CREATE TABLE {partition_name(month)} PARTITION OF {TABLE} "
                        f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
                        f"TO ('{rules.next_month(month).isoformat()} 00:00:00+00')")
                    created.append(month)
        self._known = existing | set(missing)
        return created

    def forget(self) -> None:
        """Re-read the partitions on next use (after a purge dropped some)."""
        self._known = None

    @staticmethod
    async def _existing(connection: asyncpg.Connection) -> set[date]:
        months = set()
        for (name,) in await connection.fetch(_EXISTING_MONTHS):
            match = _PARTITION_NAME.fullmatch(name)
            if match is not None:  # an operator's own partitions (e.g. a default) are not ours to track
                months.add(date(int(match[1]), int(match[2]), 1))
        return months


def month_partitions_of(events: Iterable[Event]) -> set[date]:
    return {rules.month_of(e.occur_time) for e in events if e.occur_time is not None}

