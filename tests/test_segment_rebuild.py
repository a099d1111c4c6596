"""Segment rebuilds its feature read model from profile's List RPCs when profile's retention purged
events the model never applied (CURSOR_EXPIRED): real profile and segment servers in this process,
on their own databases. Customers, holdings and marketing consents that changed while segment was
away are in the model afterwards, the rebuild is a `segment.rebuild_features` operation, and the
model follows profile's feed again."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import sqlalchemy as sa
from google.protobuf import field_mask_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.type import date_pb2, money_pb2

from crm.common.v1 import audit_pb2, operation_pb2
from crm.profile.v1 import consent_pb2 as c
from crm.profile.v1 import customer_pb2, profile_service_pb2, profile_service_pb2_grpc
from crm.profile.v1 import holding_pb2 as h
from crm.segment.v1 import read_model_pb2, segment_service_pb2_grpc
from crm.segment.v1 import segment_service_pb2 as spb
from crm_profile import tables as profile_tables
from crm_profile.app import SPEC as PROFILE
from crm_segment.app import SPEC as SEGMENT
from crmkit.auth import Role
from crmkit.db import Database
from crmkit.outbox import ChangeFeed
from crmkit.testing import bearer, eventually, migrated_database, running_service, serving

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_DATA_MANAGEMENT, justification="rebuild test")
ADMIN = bearer(Role.ADMIN, Role.CHANNEL_APP, subject="steward-1")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")
PROFILE_KEYS = {"encryption_keys": "k1:" + base64.b64encode(os.urandom(32)).decode(), "active_key_id": "k1",
                "blind_index_key": base64.b64encode(os.urandom(32)).decode(), "feed_poll_seconds": 0.05}


def _holding(holding_id: str) -> h.Holding:
    opened = datetime.now(UTC).date() - timedelta(days=30)
    return h.Holding(holding_id=holding_id, product_code="TD-CNY", product_type=h.PRODUCT_TYPE_TERM_DEPOSIT,
                     currency="CNY", balance=money_pb2.Money(currency_code="CNY", units=50_000),
                     open_date=date_pb2.Date(year=opened.year, month=opened.month, day=opened.day),
                     status=h.HOLDING_STATUS_ACTIVE, source_system="core-banking")


def _opt_in(channel: int) -> c.ConsentRecord:
    effective = Timestamp()
    effective.FromDatetime(datetime.now(UTC) - timedelta(days=1))
    return c.ConsentRecord(purpose=c.CONSENT_PURPOSE_MARKETING, channel=channel,
                           decision=c.CONSENT_DECISION_OPT_IN,
                           evidence=c.ConsentEvidence(source=c.CONSENT_SOURCE_BRANCH_FORM, effective_time=effective,
                                                      text_version="MKT-1", recorded_by="emp-1"))


async def test_an_expired_cursor_rebuilds_the_model_from_profile_and_following_resumes(database_factory) -> None:
    profile_url = await migrated_database(database_factory, PROFILE)
    segment_url = await migrated_database(database_factory, SEGMENT)
    run = uuid.uuid4().hex[:6].upper()
    segment_db = await Database.open(segment_url)
    try:
        await _scenario(profile_url, segment_url, segment_db, run)
    finally:
        await segment_db.dispose()


async def _scenario(profile_url: str, segment_url: str, segment_db: Database, run: str) -> None:

    async def model() -> dict[str, tuple[str, list[str], list[str]]]:
        async with segment_db.unit_of_work(read_only=True) as uow:
            rows = await uow.execute(sa.text(
                "SELECT customer_id, branch_id, product_categories, marketing_channels FROM customer_feature"))
            return {r.customer_id: (r.branch_id, list(r.product_categories or []), list(r.marketing_channels or []))
                    for r in rows}

    async with serving(PROFILE, database_url=profile_url, **PROFILE_KEYS) as (server, profile_runtime), \
            grpc.aio.insecure_channel(target := f"127.0.0.1:{server.bound_port}") as profile_channel:
        profile = profile_service_pb2_grpc.ProfileServiceStub(profile_channel)

        async def create(i: int) -> str:
            created = await profile.CreateCustomer(profile_service_pb2.CreateCustomerRequest(
                customer=customer_pb2.Customer(customer_id=f"R{run}{i}", full_name="Wang Fang", branch_id="br-1",
                                               customer_type=customer_pb2.CUSTOMER_TYPE_INDIVIDUAL),
                request_id=str(uuid.uuid4())), metadata=ADMIN)
            return created.customer.customer_id

        first = [await create(i) for i in range(3)]
        overrides = {"profile_target": target, "profile_feed_max_backoff_seconds": 0.2}
        async with running_service(SEGMENT, database_url=segment_url, **overrides):
            await eventually(model, until=lambda rows: set(first) <= set(rows), what="the first customers")

        # While segment is away: a new customer with a holding and an SMS opt-in, a moved branch...
        late = await create(9)
        await profile.CreateHolding(h.CreateHoldingRequest(parent=f"customers/{late}", holding=_holding(f"TD{run}"),
                                                           audit=AUDIT), metadata=ADMIN)
        await profile.RecordConsent(c.RecordConsentRequest(parent=f"customers/{late}", audit=AUDIT,
                                                           consents=[_opt_in(c.CONTACT_CHANNEL_SMS)]), metadata=ADMIN)
        await profile.UpdateCustomer(profile_service_pb2.UpdateCustomerRequest(
            customer=customer_pb2.Customer(name=f"customers/{first[0]}", branch_id="br-2"),
            update_mask=field_mask_pb2.FieldMask(paths=["branch_id"]), audit=AUDIT), metadata=ADMIN)
        # ...and profile's retention purges every event so far: segment's cursor is now expired.
        purged = await ChangeFeed(profile_runtime.db, profile_tables.outbox_event,
                                  profile_tables.outbox_state).purge(retention=timedelta(0))
        assert purged > 0

        async with running_service(SEGMENT, database_url=segment_url, **overrides) as (channel, _):
            segment = segment_service_pb2_grpc.SegmentServiceStub(channel)

            async def rebuilds() -> list[operation_pb2.Operation]:
                listed = await segment.ListOperations(spb.ListOperationsRequest(kind="segment.rebuild_features"),
                                                      metadata=ANALYST)
                return list(listed.operations)

            done = await eventually(rebuilds, what="the operation", until=lambda ops: bool(ops) and all(
                op.state == operation_pb2.OPERATION_STATE_SUCCEEDED for op in ops))
            assert len(done) == 1
            response = read_model_pb2.RebuildFeatureModelResponse()
            assert done[0].response.Unpack(response) and response.feed == "profile"
            assert response.changed_count >= 4, "customers, their preferences, the consent and the holding"
            rows = await eventually(model, until=lambda rows: late in rows and rows[first[0]][0] == "br-2",
                                    what="the rebuilt model")
            assert set(rows) == {*first, late}
            assert rows[late][1:] == (["TERM_DEPOSIT"], ["SMS"]), "holdings and consents are rebuilt too"


            # Following resumed: a customer created now reaches the model through the feed.
            newest = await create(10)
            await eventually(model, until=lambda rows: newest in rows, what="a customer after the rebuild")
