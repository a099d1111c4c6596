"""All SQL of real-time membership, in the feed consumer's transaction (nothing here commits).

The statements run on the transaction's own asyncpg connection (`raw_connection`): an evaluation
is four round trips on the hot path of every applied change, and SQLAlchemy's per-statement work
cost more CPU than the statements themselves.

A customer's feature values are read with the catalogue's own SQL expressions
(`segments.rules.SQL_COLUMNS`), so the closures see exactly the values materialisation's SQL
sees: enum names, today's maturity distance, `now` as the transaction's time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_segment.membership.model import ChangeCause, ChangeKind, MembershipChange
from crm_segment.realtime.model import LiveSegment, Transition
from crm_segment.segments.model import EvaluationMode
from crm_segment.segments.rules import SQL_COLUMNS

_VALUES = ", ".join(f'{expression} AS "{name}"' for name, expression in sorted(SQL_COLUMNS.items()))
# Fixed text from the catalogue; the customer id is the only bound value.
_FEATURES = (f"SELECT {_VALUES} FROM customer_feature cf "  # noqa: S608 - catalogue text, no input
             "WHERE cf.customer_id = $1 AND NOT cf.removed")
_LIVE = f"""
    SELECT s.segment_id, s.rule, s.rule_version, m.customer_id IS NOT NULL AS is_member
    FROM segment s LEFT JOIN segment_member m ON m.segment_id = s.segment_id AND m.customer_id = $1
    WHERE s.evaluation_mode = {int(EvaluationMode.REAL_TIME)} AND s.last_materialised_at IS NOT NULL
    ORDER BY s.segment_id FOR SHARE OF s"""  # noqa: S608 - fixed text, the customer id bound


async def raw_connection(connection: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under the consumer's transaction, which must have begun (the read
    model's apply wrote through it): a statement outside it would commit on its own."""
    raw = (await connection.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    if not raw.is_in_transaction():
        raise RuntimeError("real-time evaluation belongs inside the feed consumer's transaction")
    return raw


async def live_segments(connection: asyncpg.Connection, customer_id: str
                        ) -> tuple[list[LiveSegment], frozenset[str]]:
    """Real-time segments that were materialised, and which of them the customer is a member of,
    in one round trip. The segments stay share-locked until the transaction ends: a
    materialisation or a rule change of one of them waits for this evaluation, and this one for
    them, so neither works on membership the other is replacing."""
    found = await connection.fetch(_LIVE, customer_id)
    return ([LiveSegment(row["segment_id"], row["rule"], row["rule_version"]) for row in found],
            frozenset(row["segment_id"] for row in found if row["is_member"]))


async def features(connection: asyncpg.Connection, customer_id: str) -> Mapping[str, Any] | None:
    """The customer's values of every catalogue variable; None when not in the population."""
    row = await connection.fetchrow(_FEATURES, customer_id)
    return dict(row) if row is not None else None


_FEATURES_IN_UOW = sa.text(_FEATURES.replace("$1", ":customer_id"))


async def features_in(uow: AsyncConnection, customer_id: str) -> Mapping[str, Any] | None:
    """The same read as one statement of an RPC's unit of work (explain, lifetime value)."""
    row = (await uow.execute(_FEATURES_IN_UOW, {"customer_id": customer_id})).first()
    return dict(row._mapping) if row is not None else None


# One statement (one round trip) per evaluation that moved anything: members, counts, history.
# Membership is not the definition, so neither the etag (`version`) nor `updated_at` moves.
_RECORD = f"""
    WITH t AS (SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[]) AS t (segment_id, kind, rule_version)),
         came AS (INSERT INTO segment_member (segment_id, customer_id, entered_at, rule_version)
                  SELECT segment_id, $4::text, now(), rule_version FROM t WHERE kind = {int(ChangeKind.ENTERED)}
                  ON CONFLICT (segment_id, customer_id) DO NOTHING),
         gone AS (DELETE FROM segment_member m USING t
                  WHERE t.kind = {int(ChangeKind.LEFT)} AND m.segment_id = t.segment_id
                    AND m.customer_id = $4::text),
         counted AS (UPDATE segment s
                     SET member_count = s.member_count + CASE t.kind WHEN {int(ChangeKind.ENTERED)} THEN 1 ELSE -1 END
                     FROM t WHERE s.segment_id = t.segment_id)
    INSERT INTO membership_change (segment_id, customer_id, kind, cause, changed_at, rule_version, source_event_id)
    SELECT segment_id, $4::text, kind, $5::smallint, now(), rule_version, $6::text FROM t
    RETURNING change_id, segment_id, kind, changed_at, rule_version"""  # noqa: S608 - fixed text, values bound


async def record(connection: asyncpg.Connection, *, customer_id: str, transitions: Sequence[Transition],
                 cause: ChangeCause, source_event_id: str) -> list[MembershipChange]:
    """Apply the entries and exits to the members and the counts, and append them to the history."""
    rows = await connection.fetch(
        _RECORD, [t.segment_id for t in transitions], [int(t.kind) for t in transitions],
        [t.rule_version for t in transitions], customer_id, int(cause), source_event_id)
    changes = [MembershipChange(change_id=row["change_id"], segment_id=row["segment_id"], customer_id=customer_id,
                                kind=ChangeKind(row["kind"]), cause=cause, changed_at=row["changed_at"],
                                rule_version=row["rule_version"], operation_id=None, source_event_id=source_event_id)
               for row in rows]
    return sorted(changes, key=lambda c: c.change_id)
