"""Segment's feature read model follows profile across real processes: segment starts and serves
while profile is down, customers created and changed in profile appear in segment's model, and
a profile restart mid-stream loses and repeats nothing."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm_profile.app import SPEC as PROFILE
from crm_segment.app import SPEC as SEGMENT
from crm_segment.features import rules
from crmkit.auth import Role
from crmkit.db import Database
from crmkit.testing import TEST_JWT_SECRET, eventually, free_port, migrated_database, token

pytestmark = pytest.mark.slow

CUSTOMERS = 40
RESTART_AFTER = 20
UPDATED = 10
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="RM reassignment")


async def test_profile_changes_reach_segment_read_model_across_a_profile_restart(
    database_factory, launcher, service_env,
) -> None:
    profile_url = await migrated_database(database_factory, PROFILE)
    segment_url = await migrated_database(database_factory, SEGMENT)
    profile_port, segment_port = free_port(), free_port()
    profile_env = service_env.profile(profile_url, profile_port)
    profile_env["CRM_SHUTDOWN_GRACE_SECONDS"] = "5"
    segment_env = {
        "CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1", "CRM_LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",  # the log file is read while the process runs
        "CRM_ACCESS_LOG": "false", "CRM_HEALTH_PROBE_SECONDS": "0.5",
        "CRM_SEGMENT_DATABASE_URL": segment_url, "CRM_SEGMENT_PORT": str(segment_port),
        "CRM_SEGMENT_PROFILE_TARGET": f"127.0.0.1:{profile_port}",
        "CRM_SEGMENT_PROFILE_FEED_MAX_BACKOFF_SECONDS": "0.5",
    }
    # Segment first: it starts and serves with profile down.
    segment = launcher.start("segment", "crm_segment", segment_env, "serve")
    await launcher.wait_serving(f"127.0.0.1:{segment_port}", segment)
    first = launcher.start("profile-1", "crm_profile", profile_env, "serve")
    await launcher.wait_serving(f"127.0.0.1:{profile_port}", first)

    admin = (("authorization", f"Bearer {token(Role.ADMIN)}"),)
    run = uuid.uuid4().hex[:6].upper()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}")
    stub = profile_service_pb2_grpc.ProfileServiceStub(channel)

    async def retried(call: object, what: str) -> None:
        async def done() -> bool:
            try:
                await call()  # type: ignore[operator]
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                return False
            return True
        await eventually(done, seconds=60, interval=0.2, what=what)

    def create(i: int) -> object:
        request = profile_service_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(customer_id=f"S{run}{i:03d}", full_name="Li Na", branch_id="br-1",
                                           customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
            request_id=str(uuid.UUID(int=i + 1)))
        return lambda: stub.CreateCustomer(request, metadata=admin)

    def move(i: int) -> object:
        request = profile_service_pb2.UpdateCustomerRequest(
            customer=customer_pb2.Customer(name=f"customers/S{run}{i:03d}", branch_id="br-2"),
            update_mask=field_mask_pb2.FieldMask(paths=["branch_id"]), audit=AUDIT)
        return lambda: stub.UpdateCustomer(request, metadata=admin)

    segment_db = await Database.open(segment_url)

    async def model() -> dict[str, tuple[str, int]]:
        async with segment_db.unit_of_work(read_only=True) as connection:
            rows = await connection.execute(sa.text(
                "SELECT customer_id, branch_id, customer_position FROM customer_feature"
                " WHERE customer_position IS NOT NULL"))
            return {r.customer_id: (r.branch_id, int(r.customer_position)) for r in rows}

    try:
        for i in range(RESTART_AFTER):
            await retried(create(i), f"customer {i} created")
        for i in range(UPDATED // 2):
            await retried(move(i), f"customer {i} moved")
        assert first.stop() == 0, "profile drains and exits cleanly on SIGTERM"
        # With profile down segment still serves (its model is stale, not wrong).
        await launcher.wait_serving(f"127.0.0.1:{segment_port}", segment)
        second = launcher.start("profile-2", "crm_profile", profile_env, "serve")
        await launcher.wait_serving(f"127.0.0.1:{profile_port}", second)
        for i in range(RESTART_AFTER, CUSTOMERS):
            await retried(create(i), f"customer {i} created")
        for i in range(UPDATED // 2, UPDATED):
            await retried(move(i), f"customer {i} moved")
        last_change_acknowledged = time.monotonic()
        last = f"S{run}{UPDATED - 1:03d}"
        await eventually(model, until=lambda rows: rows.get(last, ("",))[0] == "br-2", seconds=30,
                         what="the last change in segment's read model")
        propagation = time.monotonic() - last_change_acknowledged

        profile_db = await Database.open(profile_url)
        async with profile_db.unit_of_work(read_only=True) as connection:
            written = (await connection.execute(sa.text(
                "SELECT xid || '.' || cursor AS cursor, resource_name FROM outbox_event"
                " WHERE resource_type = 'crm.profile.v1.Customer' ORDER BY xid, cursor"))).all()
        await profile_db.dispose()
        assert len(written) == CUSTOMERS + UPDATED
        latest = {r.resource_name.removeprefix("customers/"): rules.position_key(r.cursor) for r in written}

        rows = await eventually(model, until=lambda rows: len(rows) == CUSTOMERS, seconds=30,
                                what="every customer in the read model")
        # Nothing lost (every customer, at its latest event) and nothing extra.
        assert {cid: position for cid, (_, position) in rows.items()} == latest
        assert sorted(cid for cid, (branch, _) in rows.items() if branch == "br-2") == \
            [f"S{run}{i:03d}" for i in range(UPDATED)]
        async with segment_db.unit_of_work(read_only=True) as connection:
            stored_cursor = await connection.scalar(sa.text("SELECT cursor FROM feed_cursor WHERE feed = 'profile'"))
        assert rules.position_key(stored_cursor) >= max(latest.values())
    finally:
        await channel.close()
        await segment_db.dispose()

    def health_lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in segment.log_lines() if '"health_details"' in line
                or '"health_changed"' in line]

    # The probe logs every half second; wait for one written after the feed connected.
    details = await eventually(health_lines, until=lambda lines: any(d.get("profile_feed_connected") for d in lines),
                               seconds=30, what="a health line with profile's feed connected")
    lags = [d["feature_lag_seconds"] for d in details if d.get("feature_lag_seconds") is not None]
    assert any(d.get("profile_feed_connected") for d in details), "health details report the feed"
    assert all(d.get("feature_model_needs_rebuild") is False for d in details if "feature_model_needs_rebuild" in d)
    print(f"\nread model: change acknowledged -> visible in segment {propagation:.3f} s; "
          f"health-detail lags seen {min(lags, default=None)}..{max(lags, default=None)} s")
