"""The kit's plumbing for service functions: fingerprinted idempotency keys, load-for-update,
and one unit of work shared by several calls, on a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from crm.campaign.v1 import campaign_pb2
from crm.campaign.v1 import campaign_service_pb2 as pb
from crmkit.db import Database, UnitOfWork, create_engine, metadata
from crmkit.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from crmkit.idempotency import IdempotencyKeys, idempotency_table, request_fingerprint
from crmkit.locking import load_for_update
from crmkit.testing import DatabaseFactory

kit = metadata()
keys = idempotency_table(kit)


@pytest.fixture(scope="module")
async def db(database_factory: DatabaseFactory) -> AsyncIterator[Database]:
    database = await Database.open(await database_factory.create("kit_uow"))
    async with database.engine.begin() as connection:
        await connection.run_sync(kit.create_all)
    yield database
    await database.dispose()


def create(display_name: str, request_id: uuid.UUID) -> pb.CreateCampaignRequest:
    return pb.CreateCampaignRequest(campaign=campaign_pb2.Campaign(display_name=display_name),
                                    request_id=str(request_id))


async def claim(db: Database, request: pb.CreateCampaignRequest, resource_name: str) -> str | None:
    async with db.unit_of_work() as uow:
        return await IdempotencyKeys(keys).claim(
            uow, principal="p", request_id=uuid.UUID(request.request_id), request=request, method="CreateCampaign",
            resource_name=resource_name)


def test_the_fingerprint_covers_the_body_but_not_the_request_id() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    assert request_fingerprint(create("Spring", first)) == request_fingerprint(create("Spring", second))
    assert request_fingerprint(create("Spring", first)) != request_fingerprint(create("Autumn", first))


async def test_a_reused_request_id_with_the_same_body_replays_the_first_answer(db: Database) -> None:
    request_id = uuid.uuid4()
    assert await claim(db, create("Spring", request_id), "campaigns/1") is None
    assert await claim(db, create("Spring", request_id), "campaigns/2") == "campaigns/1"


async def test_a_reused_request_id_with_another_body_is_refused(db: Database) -> None:
    request_id = uuid.uuid4()
    assert await claim(db, create("Spring", request_id), "campaigns/1") is None
    with pytest.raises(InvalidArgument) as refused:
        await claim(db, create("Autumn", request_id), "campaigns/2")
    assert refused.value.reason == "REQUEST_ID_REUSED"
    assert [v.field for v in refused.value.violations] == ["request_id"]


async def test_a_key_stored_before_fingerprints_replays_whatever_the_body(db: Database) -> None:
    request_id = uuid.uuid4()
    async with db.unit_of_work() as uow:
        await uow.execute(sa.insert(keys).values(principal="p", request_id=request_id, method="CreateCampaign",
                                                 resource_name="campaigns/old"))
    assert await claim(db, create("Anything", request_id), "campaigns/new") == "campaigns/old"


async def test_claim_or_replay_loads_the_first_answer_or_lets_the_caller_go_ahead(db: Database) -> None:
    request = create("Spring", uuid.uuid4())

    async def claimed(uow: UnitOfWork) -> str | None:
        async def replay(name: str) -> str:
            return f"loaded {name}"
        return await IdempotencyKeys(keys).claim_or_replay(
            uow, principal="p", request_id=uuid.UUID(request.request_id), request=request, method="CreateCampaign",
            resource_name="campaigns/1", replay=replay)

    async with db.unit_of_work() as uow:
        assert await claimed(uow) is None
    async with db.unit_of_work() as uow:
        assert await claimed(uow) == "loaded campaigns/1"


@dataclasses.dataclass(frozen=True)
class Thing:
    name: str
    etag: str
    open: bool = True


async def found(thing: Thing | None) -> Thing | None:
    return thing


def missing() -> NotFound:
    return NotFound("thing not found", reason="THING_NOT_FOUND")


def must_be_open(thing: Thing) -> None:
    if not thing.open:
        raise FailedPrecondition("thing is closed", reason="THING_CLOSED")


async def test_load_for_update_returns_the_resource_when_the_etag_matches_or_is_absent() -> None:
    thing = Thing("things/1", etag='"1"')
    assert await load_for_update(found(thing), etag='"1"', not_found=missing) is thing
    assert await load_for_update(found(thing), etag="", not_found=missing, check=must_be_open) is thing


async def test_load_for_update_refuses_a_missing_resource_then_the_callers_check_then_a_stale_etag() -> None:
    with pytest.raises(NotFound):
        await load_for_update(found(None), etag='"1"', not_found=missing)
    with pytest.raises(FailedPrecondition):  # the caller's refusal wins over "re-read and retry"
        await load_for_update(found(Thing("things/1", '"2"', open=False)), etag='"1"', not_found=missing,
                              check=must_be_open)
    with pytest.raises(Aborted) as stale:
        await load_for_update(found(Thing("things/1", '"2"')), etag='"1"', not_found=missing)
    assert stale.value.reason == "ETAG_MISMATCH"
    assert stale.value.metadata == {"resource_name": "things/1"}


async def test_a_read_only_unit_of_work_refuses_writes(db: Database) -> None:
    with pytest.raises(sa.exc.DBAPIError):
        async with db.unit_of_work(read_only=True) as uow:
            await uow.execute(sa.insert(keys).values(principal="p", request_id=uuid.uuid4(), method="m",
                                                     resource_name="r"))


async def test_both_ways_in_end_a_transaction_left_idle(db: Database) -> None:
    """An idle open transaction would hold the change feed back; every connection has a timeout."""
    async with db.unit_of_work(read_only=True) as uow:
        assert await uow.scalar(sa.text("SHOW idle_in_transaction_session_timeout")) == "2min"
    async with db.raw() as connection:
        assert await connection.fetchval("SHOW idle_in_transaction_session_timeout") == "2min"


@pytest.fixture
async def refused_role(database_factory: DatabaseFactory) -> AsyncIterator[str]:
    """A database URL whose role PostgreSQL refuses as having too many connections (limit 0)."""
    role = f"crm_full_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_factory.admin_url)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
        yield make_url(database_factory.admin_url).set(username=role, password=None).render_as_string(
            hide_password=False)
    finally:
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


async def test_a_database_out_of_connections_or_unreachable_is_unavailable_not_internal(refused_role: str) -> None:
    """A server at its connection limit answers "too many clients" (class 53): the caller gets
    UNAVAILABLE, which it may retry, and background work waits instead of giving up on an item."""
    for url in (refused_role, "postgresql://postgres@127.0.0.1:1/postgres"):
        database = Database(create_engine(url, pool_size=1))
        try:
            with pytest.raises(Unavailable) as raised:
                async with database.unit_of_work():
                    pass
            assert raised.value.reason == "DATABASE_UNAVAILABLE"
        finally:
            await database.engine.dispose()


async def test_an_error_of_the_work_itself_is_not_taken_for_an_unreachable_database(db: Database) -> None:
    with pytest.raises(ConnectionRefusedError):  # e.g. a peer refused, inside the transaction
        async with db.unit_of_work() as uow:
            await uow.execute(sa.text("SELECT 1"))
            raise ConnectionRefusedError("a peer refused")


async def test_a_raw_connection_asked_for_while_the_pool_is_empty_is_unavailable_in_bounded_time(
        database_factory: DatabaseFactory) -> None:
    """Work holding the pool's only raw connection that asks for another (an operation reporting
    progress) gets UNAVAILABLE after the pool timeout instead of waiting forever."""
    database = await Database.open(await database_factory.create("kit_pool"), pool_size=1, pool_timeout=0.3)
    try:
        async with database.raw():
            with pytest.raises(Unavailable):
                async with database.raw():
                    pass
        async with database.raw() as connection:  # released, so free again
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await database.dispose()
