"""The profile change feed survives a profile restart mid-stream: a consumer that stores its cursor
with each applied event ends with every event exactly once, in order, no gap, no duplicate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_profile.app import SPEC as PROFILE
from crmkit.auth import Role
from crmkit.channels import open_channel
from crmkit.db import Database, metadata
from crmkit.feed_consumer import ChangeEvent, FeedConsumer, feed_cursor_table
from crmkit.outbox import parse_cursor
from crmkit.testing import eventually, free_port, migrated_database, token

pytestmark = pytest.mark.slow

consumer_tables = metadata()
cursors = feed_cursor_table(consumer_tables)
applied = sa.Table(
    "applied_event", consumer_tables,
    # The primary key makes a duplicate apply fail the consumer's transaction, and so the test.
    sa.Column("cursor", sa.Text, primary_key=True),
    sa.Column("resource_name", sa.Text, nullable=False),
)
CUSTOMERS = 60
RESTART_AFTER = 20


async def test_a_consumer_misses_nothing_and_repeats_nothing_across_a_profile_restart(
    database_factory, launcher, service_env,
) -> None:
    profile_url = await migrated_database(database_factory, PROFILE)
    consumer_db = await Database.open(await database_factory.create("consumer"))
    async with consumer_db.engine.begin() as connection:
        await connection.run_sync(consumer_tables.create_all)
    port = free_port()
    env = service_env.profile(profile_url, port)
    env["CRM_SHUTDOWN_GRACE_SECONDS"] = "5"
    first = launcher.start("profile-1", "crm_profile", env, "serve")
    await launcher.wait_serving(f"127.0.0.1:{port}", first)

    service_token = token(Role.SERVICE, subject="svc-consumer")
    channel = open_channel(f"127.0.0.1:{port}", deadline_seconds=5, token_source=lambda: service_token)
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)

    async def open_stream(after: str) -> AsyncIterator[list[ChangeEvent]]:
        async for response in stub.WatchChanges(profile_service_pb2.WatchChangesRequest(after_cursor=after)):
            yield list(response.events)

    async def apply(connection: AsyncConnection, event: ChangeEvent) -> None:
        await connection.execute(sa.insert(applied).values(cursor=event.cursor,
                                                           resource_name=event.resource_name))

    consumer = FeedConsumer(name="profile", db=consumer_db, cursors=cursors, open_stream=open_stream, apply=apply,
                            max_backoff_seconds=0.5)
    following = asyncio.create_task(consumer.run())
    admin_token = token(Role.ADMIN)
    run = uuid.uuid4().hex[:6].upper()

    async def create(i: int) -> None:
        request = profile_service_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(customer_id=f"R{run}{i:03d}", full_name="Wang Fang",
                                           customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
            request_id=str(uuid.UUID(int=i + 1)))
        async def created() -> bool:
            try:
                await stub.CreateCustomer(request, metadata=(("authorization", f"Bearer {admin_token}"),))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                return False
            return True

        # The producer retries through the restart; request_id keeps it idempotent.
        await eventually(created, seconds=60, interval=0.2, what=f"customer {i} created")

    try:
        for i in range(RESTART_AFTER):
            await create(i)
        assert first.stop() == 0, "profile drains and exits cleanly on SIGTERM"
        second = launcher.start("profile-2", "crm_profile", env, "serve")
        restarted = asyncio.create_task(launcher.wait_serving(f"127.0.0.1:{port}", second))
        for i in range(RESTART_AFTER, CUSTOMERS):
            await create(i)
        await restarted

        profile_db = await Database.open(profile_url)
        async with profile_db.unit_of_work(read_only=True) as connection:
            written = [tuple(r) for r in (await connection.execute(sa.text(
                "SELECT xid || '.' || cursor, resource_name FROM outbox_event ORDER BY xid, cursor"))).all()]
        await profile_db.dispose()
        assert len(written) == CUSTOMERS

        await eventually(consumer.cursor, until=lambda cursor: parse_cursor(cursor) >= parse_cursor(written[-1][0]),
                         seconds=30, what="the consumer's cursor at the last event")
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await channel.close()

    async with consumer_db.unit_of_work(read_only=True) as connection:
        received = [tuple(r) for r in (await connection.execute(
            sa.select(applied.c.cursor, applied.c.resource_name))).all()]
    received.sort(key=lambda row: parse_cursor(row[0]))
    await consumer_db.dispose()
    assert received == written
