"""All SQL of real-time membership, in the feed consumer's transaction (nothing here commits).

A customer's feature values are read with the catalogue's own SQL expressions
(`segments.rules.SQL_COLUMNS`), so the closures see exactly the values materialisation's SQL
sees: enum names, today's maturity distance, `now` as the transaction's time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm_segment.membership.model import ChangeCause, ChangeKind, MembershipChange
from crm_segment.membership.tables import segment_member
from crm_segment.realtime.model import LiveSegment, Transition
from crm_segment.segments.model import EvaluationMode
from crm_segment.segments.rules import SQL_COLUMNS
from crm_segment.segments.tables import segment

_VALUES = ", ".join(f'{expression} AS "{name}"' for name, expression in sorted(SQL_COLUMNS.items()))
# Fixed text from the catalogue; the customer id is the only bound value.
_FEATURES = sa.text(f"SELECT {_VALUES} FROM customer_feature cf "  # noqa: S608 - catalogue text, no input
                    "WHERE cf.customer_id = :customer_id AND NOT cf.removed")


async def live_segments(connection: AsyncConnection, customer_id: str) -> tuple[list[LiveSegment], frozenset[str]]:
    """Real-time segments that were materialised, and which of them the customer is a member of,
    in one round trip. The segments stay share-locked until the transaction ends: a
    materialisation or a rule change of one of them waits for this evaluation, and this one for
    them, so neither works on membership the other is replacing."""
    s, m = segment.c, segment_member.c
    rows = await connection.execute(
        sa.select(s.segment_id, s.rule, s.rule_version, m.customer_id.is_not(None).label("is_member"))
        .outerjoin(segment_member, sa.and_(m.segment_id == s.segment_id, m.customer_id == customer_id))
        .where(s.evaluation_mode == int(EvaluationMode.REAL_TIME), s.last_materialised_at.is_not(None))
        .order_by(s.segment_id).with_for_update(read=True, of=segment))
    found = rows.all()
    return ([LiveSegment(row.segment_id, row.rule, row.rule_version) for row in found],
            frozenset(row.segment_id for row in found if row.is_member))


async def features(connection: AsyncConnection, customer_id: str) -> Mapping[str, Any] | None:
    """The customer's values of every catalogue variable; None when not in the population."""
    row = (await connection.execute(_FEATURES, {"customer_id": customer_id})).mappings().first()
    return dict(row) if row is not None else None


# One statement (one round trip) per evaluation that moved anything: members, counts, history.
# Membership is not the definition, so neither the etag (`version`) nor `updated_at` moves.
_RECORD = sa.text(f"""
    WITH t AS (SELECT * FROM unnest(CAST(:segment_ids AS text[]), CAST(:kinds AS smallint[]),
                                    CAST(:versions AS bigint[])) AS t (segment_id, kind, rule_version)),
         came AS (INSERT INTO segment_member (segment_id, customer_id, entered_at, rule_version)
                  SELECT segment_id, :customer_id, now(), rule_version FROM t WHERE kind = {int(ChangeKind.ENTERED)}
                  ON CONFLICT (segment_id, customer_id) DO NOTHING),
         gone AS (DELETE FROM segment_member m USING t
                  WHERE t.kind = {int(ChangeKind.LEFT)} AND m.segment_id = t.segment_id
                    AND m.customer_id = :customer_id),
         counted AS (UPDATE segment s
                     SET member_count = s.member_count + CASE t.kind WHEN {int(ChangeKind.ENTERED)} THEN 1 ELSE -1 END
                     FROM t WHERE s.segment_id = t.segment_id)
    INSERT INTO membership_change (segment_id, customer_id, kind, cause, changed_at, rule_version, source_event_id)
    SELECT segment_id, :customer_id, kind, :cause, now(), rule_version, :source_event_id FROM t
    RETURNING change_id, segment_id, kind, changed_at, rule_version""")  # noqa: S608 - fixed text, values bound


async def record(connection: AsyncConnection, *, customer_id: str, transitions: Sequence[Transition],
                 cause: ChangeCause, source_event_id: str) -> list[MembershipChange]:
    """Apply the entries and exits to the members and the counts, and append them to the history."""
    rows = await connection.execute(_RECORD, {
        "segment_ids": [t.segment_id for t in transitions], "kinds": [int(t.kind) for t in transitions],
        "versions": [t.rule_version for t in transitions], "customer_id": customer_id, "cause": int(cause),
        "source_event_id": source_event_id})
    changes = [MembershipChange(change_id=row.change_id, segment_id=row.segment_id, customer_id=customer_id,
                                kind=ChangeKind(row.kind), cause=cause, changed_at=row.changed_at,
                                rule_version=row.rule_version, operation_id=None, source_event_id=source_event_id)
               for row in rows]
    return sorted(changes, key=lambda c: c.change_id)
