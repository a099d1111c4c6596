"""The lifetime-value platform path through real processes: CDNOW's 1/10th sample ingested as
transactions through profile's IngestEvents, carried by profile's change feed into segment's read
model, and fitted through segment's FitLifetimeValueModel, gives the published BG/NBD parameters
(Fader, Hardie & Lee 2005: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426) within 1 %.

The purchases are moved forward by a whole number of days so the newest lies a month in the past
(profile refuses events older than the transaction retention, ten years); the calibration period
moves with them, so every customer's summary, in weeks, is the paper's. Profile takes only
positive amounts: the sample's eight $0.00 purchases are sent as $0.01 (they still count as
purchases, which is all BG/NBD reads).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.duration_pb2 import Duration
from google.type import interval_pb2, money_pb2

from crm.common.v1 import operation_pb2
from crm.profile.v1 import customer_pb2, event_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm.segment.v1 import analytics_pb2, segment_service_pb2, segment_service_pb2_grpc
from crm_profile.app import SPEC as PROFILE
from crm_segment.app import SPEC as SEGMENT
from crmkit.auth import Role
from crmkit.db import Database
from crmkit.testing import TEST_JWT_SECRET, eventually, free_port, migrated_database, shared_data_dir, token

# Thousands of customers and purchases through two real processes: minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
CALIBRATION = (date(1997, 1, 1), date(1997, 10, 1))  # end exclusive: through 30 September
CENT = Decimal("0.01")


def purchases() -> list[tuple[str, date, Decimal]]:
    path = shared_data_dir("CDNOW_sample.txt") / "CDNOW_sample.txt"
    rows = []
    for line in path.read_text().splitlines():
        master_id, _, day, _, dollars = line.split()
        rows.append((master_id, date(int(day[:4]), int(day[4:6]), int(day[6:])), Decimal(dollars)))
    return rows


def _money(amount: Decimal) -> money_pb2.Money:
    units = int(amount)
    return money_pb2.Money(currency_code="USD", units=units, nanos=int((amount - units) * 10**9))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def test_cdnow_through_profile_and_segment_reproduces_the_published_fit(
    database_factory, launcher, service_env,
) -> None:
    rows = purchases()
    shift = timedelta(days=((datetime.now(UTC).date() - timedelta(days=30)) - max(d for _, d, _ in rows)).days)
    profile_url = await migrated_database(database_factory, PROFILE)
    segment_url = await migrated_database(database_factory, SEGMENT)
    profile_port, segment_port = free_port(), free_port()
    segment_env = {
        "CRM_ENV": "test", "CRM_JWT_SECRET": TEST_JWT_SECRET, "CRM_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1",
        "CRM_ACCESS_LOG": "false", "CRM_SEGMENT_DATABASE_URL": segment_url, "CRM_SEGMENT_PORT": str(segment_port),
        "CRM_SEGMENT_PROFILE_TARGET": f"127.0.0.1:{profile_port}", "CRM_SEGMENT_OPERATION_POLL_SECONDS": "0.2",
    }
    profile = launcher.start("profile", "crm_profile", service_env.profile(profile_url, profile_port), "serve")
    await launcher.wait_serving(f"127.0.0.1:{profile_port}", profile, timeout=120)
    segment = launcher.start("segment", "crm_segment", segment_env, "serve")
    await launcher.wait_serving(f"127.0.0.1:{segment_port}", segment, timeout=120)

    admin = (("authorization", f"Bearer {token(Role.ADMIN)}"),)
    analyst = (("authorization", f"Bearer {token(Role.ANALYST)}"),)
    run = uuid.uuid4().hex[:6].upper()
    profile_channel = grpc.aio.insecure_channel(f"127.0.0.1:{profile_port}")
    segment_channel = grpc.aio.insecure_channel(f"127.0.0.1:{segment_port}")
    profiles = profile_service_pb2_grpc.ProfileServiceStub(profile_channel)
    segments = segment_service_pb2_grpc.SegmentServiceStub(segment_channel)
    segment_db = await Database.open(segment_url)
    try:
        customers = sorted({master_id for master_id, _, _ in rows})

        async def create(master_id: str) -> None:
            await profiles.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(customer_id=f"CD{run}{master_id}", full_name="CDNOW Customer",
                                               branch_id="br-1", customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
                request_id=str(uuid.uuid4())), metadata=admin, timeout=30)

        began = time.monotonic()
        for start in range(0, len(customers), 50):
            await asyncio.gather(*(create(c) for c in customers[start:start + 50]))
        created = time.monotonic()

        events = [event_pb2.CustomerEvent(
            event_id=f"cdnow:{run}:{i}", customer=f"customers/CD{run}{master_id}",
            event_type=event_pb2.EVENT_TYPE_TRANSACTION, channel=event_pb2.EVENT_CHANNEL_WEB_BANKING,
            occur_time=_midnight(day + shift) + timedelta(hours=12), source_system="cdnow",
            transaction=event_pb2.TransactionDetail(amount=_money(max(amount, CENT)),
                                                    direction=event_pb2.TRANSACTION_DIRECTION_DEBIT,
                                                    kind=event_pb2.TRANSACTION_KIND_CARD_PAYMENT))
            for i, (master_id, day, amount) in enumerate(rows)]

        batches = [event_pb2.IngestEventsRequest(events=events[start:start + 1000])
                   for start in range(0, len(events), 1000)]
        ingested = await profiles.IngestEvents(batches, metadata=admin, timeout=120)
        assert (ingested.accepted_count, ingested.rejected_count) == (len(rows), 0), ingested.rejections[:3]

        async def transactions_in_read_model() -> int:
            async with segment_db.unit_of_work(read_only=True) as connection:
                return int(await connection.scalar(sa.text(
                    "SELECT coalesce(sum(transaction_count), 0) FROM feature_transaction_day")) or 0)

        ingested_at = time.monotonic()
        await eventually(transactions_in_read_model, until=lambda n: n == len(rows), seconds=480, interval=0.5,
                         what="every purchase in segment's read model")
        applied = time.monotonic()

        calibration = interval_pb2.Interval()
        calibration.start_time.FromDatetime(_midnight(CALIBRATION[0] + shift))
        calibration.end_time.FromDatetime(_midnight(CALIBRATION[1] + shift))
        started = await segments.FitLifetimeValueModel(segment_service_pb2.FitLifetimeValueModelRequest(
            display_name="CDNOW through the platform", calibration_period=calibration,
            time_unit=Duration(seconds=7 * 86400)), metadata=analyst, timeout=30)

        async def operation() -> operation_pb2.Operation:
            return (await segments.GetOperation(segment_service_pb2.GetOperationRequest(
                name=started.operation.name), metadata=analyst, timeout=10)).operation

        done = await eventually(operation, until=lambda op: op.state in (
            operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED), seconds=180,
            interval=0.5, what="the fit to finish")
        assert done.state == operation_pb2.OPERATION_STATE_SUCCEEDED, done.error
        model = (await segments.GetLifetimeValueModel(segment_service_pb2.GetLifetimeValueModelRequest(
            name=started.lifetime_value_model), metadata=analyst, timeout=10)).lifetime_value_model
        assert isinstance(model, analytics_pb2.LifetimeValueModel)
        assert (model.customer_count, model.repeat_customer_count) == (2357, 946)
        for name, published in PUBLISHED.items():
            assert getattr(model.bg_nbd, name) == pytest.approx(published, rel=0.01), name
        print(f"\nplatform CDNOW fit: r={model.bg_nbd.r:.4f} alpha={model.bg_nbd.alpha:.4f} a={model.bg_nbd.a:.4f} "
              f"b={model.bg_nbd.b:.4f}; customers created in {created - began:.1f} s, purchases ingested in "
              f"{ingested_at - created:.1f} s and in segment's read model {applied - ingested_at:.1f} s later, "
              f"fitted in {time.monotonic() - applied:.1f} s (measured under load)")
    finally:
        await profile_channel.close()
        await segment_channel.close()
        await segment_db.dispose()
