"""The background matcher reads the change feed in commit-safe order: a customer change whose
transaction took an early place in the outbox but committed after later changes were read is
still matched (the outbox is ordered by (transaction id, sequence), not by sequence alone)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from google.type import date_pb2

from crm.profile.v1 import customer_pb2
from crm.profile.v1 import identity_pb2 as i
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, eventually

ADMIN = bearer(Role.ADMIN)
ANALYST = bearer(Role.ANALYST)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")


def stranger(new_customer, **overrides):  # type: ignore[no-untyped-def]
    """A customer with identifiers and a name no other test uses."""
    tag = uuid.uuid4().hex
    values = {
        "full_name": f"Feed{tag[:6]} Slow{tag[6:12]}",
        "birth_date": date_pb2.Date(year=1950 + int(tag[12:14], 16) % 50, month=1, day=1 + int(tag[14], 16)),
        "id_document": customer_pb2.IdDocument(type=customer_pb2.ID_DOCUMENT_TYPE_PASSPORT,
                                               number=f"G{int(tag[15:22], 16) % 10**8:08d}", issuing_country="CN"),
        "mobile_phone": f"+86137{int(tag[22:29], 16) % 10**8:08d}",
        "email": f"{tag[:16]}@slow.example.com",
    }
    values.update(overrides)
    return new_customer(**values)


async def create(profile, customer):  # type: ignore[no-untyped-def]
    return (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=customer), metadata=RM)).customer


async def a_matcher_round_after_now(db) -> None:  # type: ignore[no-untyped-def]
    """Wait until a matcher round that began after this call has ended: every round locks the
    matcher's state row first (which stamps the row with the round's transaction id), so a stamp
    newer than a transaction begun now, with the lock free again, is such a round."""
    async with db.engine.connect() as connection:
        now = int((await connection.execute(sa.text("SELECT pg_current_xact_id()::text::bigint % 4294967296")))
                  .scalar())
        await connection.rollback()

    async def stamped_after() -> bool:
        async with db.unit_of_work(read_only=True) as uow:
            stamp = (await uow.execute(sa.text(
                "SELECT greatest(xmin::text::bigint, xmax::text::bigint) FROM matcher_state"))).scalar()
        return int(stamp or 0) > now

    await eventually(stamped_after, seconds=120, what="a matcher round begun after the mark")
    async with db.unit_of_work() as uow:  # waits for that round to commit
        await uow.execute(sa.text("SELECT 1 FROM matcher_state FOR UPDATE"))


async def test_a_change_committed_late_by_a_slow_transaction_is_still_matched(
    profile, profile_service, new_customer,
) -> None:
    _, runtime = profile_service
    older = await create(profile, stranger(new_customer, onboarded_on=date_pb2.Date(year=2001, month=1, day=1)))
    twin = await create(profile, stranger(new_customer, email=older.email))
    await a_matcher_round_after_now(runtime.db)  # the twin's creation was read while no rule applied
    rule = (await profile.CreateMatchRule(i.CreateMatchRuleRequest(match_rule=i.MatchRule(
        match_rule_id=f"slow-email-{uuid.uuid4().hex[:8]}", display_name="slow email", priority=100,
        action=i.MATCH_ACTION_SUGGEST, exact=i.ExactMatchCriteria(key=i.MATCH_KEY_EMAIL))),
        metadata=ADMIN)).match_rule
    try:
        async with runtime.db.engine.connect() as slow:
            # The slow transaction changes the twin and appends its event: its sequence number is
            # lower than those of the changes that commit while it stays open.
            await slow.execute(sa.text(
                "UPDATE customer SET occupation = 'pilot', version = version + 1, updated_at = now()"
                " WHERE customer_id = :id"), {"id": twin.customer_id})
            await slow.execute(sa.text(
                "INSERT INTO outbox_event (event_id, resource_type, resource_name, change_type, payload, actor)"
                " VALUES (gen_random_uuid(), 'crm.profile.v1.Customer', :name, 2, '', 'test:slow')"),
                {"name": twin.name})
            await create(profile, stranger(new_customer))  # a later change, committed first
            await a_matcher_round_after_now(runtime.db)  # the matcher has looked at the feed since
            await slow.commit()

        async def twin_candidates() -> list[i.MatchCandidate]:
            response = await profile.ListMatchCandidates(
                i.ListMatchCandidatesRequest(customer=twin.name, match_rule=rule.name), metadata=ANALYST)
            return list(response.match_candidates)

        found = await eventually(twin_candidates, seconds=120, what="the slow change's candidate")
        assert [list(c.customers) for c in found] == [[older.name, twin.name]]
    finally:
        await profile.DeleteMatchRule(i.DeleteMatchRuleRequest(name=rule.name), metadata=ADMIN)
