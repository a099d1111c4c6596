"""GetCustomerFeatures for a hand-made customer with known holdings and events (exact numbers),
kept current as holdings change and events arrive, and published on the change feed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2

from crm.common.v1 import audit_pb2, change_event_pb2
from crm.profile.v1 import event_pb2, features_pb2, holding_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, field_violations

FEED_READER = bearer(Role.SERVICE, subject="segment")
FEATURES_TYPE = "crm.profile.v1.CustomerFeatures"
AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
CORE_BANKING = bearer(Role.SERVICE, subject="core-banking")
ADMIN = bearer(Role.ADMIN)
H, E = holding_pb2, event_pb2


def minor(money) -> int:  # type: ignore[no-untyped-def]
    assert money.currency_code == "CNY"
    return int(money.units * 100 + money.nanos // 10_000_000)


def age_on(today: date, born: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@pytest.fixture
async def wang(world):  # type: ignore[no-untyped-def]
    """A customer onboarded 1,000 days ago with six holdings (one closed) and eleven events."""
    today = datetime.now(UTC).date()
    customer = await world.customer(birth_date=world.day(date(1986, 2, 28)))
    m = world.money
    await world.holding(customer, product_type=H.PRODUCT_TYPE_SAVINGS_ACCOUNT, balance=m(100_000),
                        open_date=today - timedelta(days=400))
    await world.holding(customer, product_type=H.PRODUCT_TYPE_TERM_DEPOSIT, balance=m(50_000, 500_000_000),
                        open_date=today - timedelta(days=30), maturity_date=today + timedelta(days=45))
    await world.holding(customer, product_type=H.PRODUCT_TYPE_FUND, balance=m(1_000, currency="USD"),
                        open_date=today - timedelta(days=60))  # no USD rate configured: not in AUM
    await world.holding(customer, product_type=H.PRODUCT_TYPE_CREDIT_CARD, balance=m(3_000),
                        open_date=today - timedelta(days=700))  # owed, not held
    wealth = await world.holding(customer, product_type=H.PRODUCT_TYPE_WEALTH_MANAGEMENT, balance=m(20_000),
                                 open_date=today - timedelta(days=120), status=H.HOLDING_STATUS_FROZEN,
                                 maturity_date=today + timedelta(days=20))
    await world.holding(customer, product_type=H.PRODUCT_TYPE_TERM_DEPOSIT, balance=m(10_000),
                        open_date=today - timedelta(days=200), status=H.HOLDING_STATUS_CLOSED,
                        close_date=today - timedelta(days=10))
    return customer, wealth


async def test_holdings_features_are_exact_right_after_the_writes(world, wang) -> None:
    customer, wealth = wang
    today = datetime.now(UTC).date()
    features = await world.features(customer)
    assert features.name == f"{customer}/features"
    assert minor(features.aum) == 17_000_050  # 100,000.00 + 50,000.50 + 20,000.00 (frozen still counts)
    assert features.product_count == 5 and features.product_type_count == 5  # the closed deposit is not open
    assert features.tenure_days == 1000
    assert features.days_to_next_maturity == 20 and features.next_maturing_holding == wealth.name
    life = features.lifecycle
    assert life.holdings_opened_90d == 2 and life.holdings_closed_90d == 1
    assert life.age_years == age_on(today, date(1986, 2, 28))
    # No AUM was recorded before today, so the 89 days before it are reconstructed from the
    # holdings' open and close dates: savings 89 days, deposit 30, wealth 89, closed deposit 79.
    window = 89 * 10_000_000 + 30 * 5_000_050 + 89 * 2_000_000 + 79 * 1_000_000 + 17_000_050
    assert minor(features.average_aum_90d) == round(window / 90) == 14_600_017
    # 90 days ago: savings, wealth and the deposit closed ten days ago were open.
    assert minor(life.aum_change_90d) == 17_000_050 - 13_000_000
    assert not life.payroll_active and not life.HasField("closed_on")
    assert features.rfm.window_days == 365 and features.rfm.frequency == 0 and not features.rfm.HasField("recency_days")
    assert not features.HasField("last_activity_time") and not features.activity.HasField("days_since_last_activity")


async def test_events_features_are_exact_once_the_refresher_has_run(world, wang) -> None:
    customer, _ = wang
    now = datetime.now(UTC)
    m, tx, kind, channel = world.money, world.transaction, E.TransactionKind, E.EventChannel
    last = now - timedelta(minutes=1)
    await world.ingest(
        tx(customer, now - timedelta(days=5), m(200), kind=kind.Value("TRANSACTION_KIND_CARD_PAYMENT"),
           channel=channel.Value("EVENT_CHANNEL_MOBILE_BANKING")),
        tx(customer, now - timedelta(days=40), m(1_000), kind=kind.Value("TRANSACTION_KIND_TRANSFER"),
           channel=channel.Value("EVENT_CHANNEL_WEB_BANKING"), direction=E.TRANSACTION_DIRECTION_CREDIT),
        tx(customer, now - timedelta(days=20), m(8_000), kind=kind.Value("TRANSACTION_KIND_SALARY"),
           channel=channel.Value("EVENT_CHANNEL_BACK_OFFICE"), event_type=E.EVENT_TYPE_PAYROLL_CREDIT,
           direction=E.TRANSACTION_DIRECTION_CREDIT),
        tx(customer, now - timedelta(days=100), m(5), kind=kind.Value("TRANSACTION_KIND_INTEREST"),
           channel=channel.Value("EVENT_CHANNEL_BACK_OFFICE"), direction=E.TRANSACTION_DIRECTION_CREDIT),
        tx(customer, now - timedelta(days=10), m(300, currency="USD"), kind=kind.Value("TRANSACTION_KIND_TRANSFER"),
           channel=channel.Value("EVENT_CHANNEL_WEB_BANKING")),
        tx(customer, now - timedelta(days=400), m(50), kind=kind.Value("TRANSACTION_KIND_CARD_PAYMENT"),
           channel=channel.Value("EVENT_CHANNEL_POS")),
        world.login(customer, now - timedelta(days=1)),
        world.login(customer, now - timedelta(days=2), success=False),
        world.event(customer, E.EVENT_TYPE_CHANNEL_VISIT, E.EVENT_CHANNEL_BRANCH, now - timedelta(days=3)),
        world.event(customer, E.EVENT_TYPE_CHANNEL_VISIT, E.EVENT_CHANNEL_WECHAT, now - timedelta(days=60)),
        world.event(customer, E.EVENT_TYPE_PRODUCT_VIEW, E.EVENT_CHANNEL_WEB_BANKING, last, product_code="FUND-1"),
    )
    features = await world.features_when(customer, lambda f: f.HasField("last_activity_time"))
    rfm, activity = features.rfm, features.activity
    # Transactions and payroll credits within 365 days: all but the one 400 days old. Monetary
    # leaves out the USD transfer (no rate configured): 200 + 1,000 + 8,000 + 5.
    assert rfm.frequency == 5 and minor(rfm.monetary) == 920_500
    assert rfm.recency_days == 5  # the card payment; salary and interest are not the customer's doing
    assert activity.login_count_30d == 1  # the failed login does not count
    assert activity.visit_count_30d == 1
    assert activity.transaction_count_30d == 2 and activity.transaction_count_90d == 3
    # Mobile, web, back office, branch and WeChat in 90 days; not the POS payment 400 days ago.
    assert activity.active_channel_count_90d == 5
    assert features.last_activity_time.ToDatetime(tzinfo=UTC) == last
    assert activity.days_since_last_activity == (datetime.now(UTC).date() - last.date()).days
    assert features.lifecycle.payroll_active
    assert minor(features.aum) == 17_000_050  # events leave the holdings' figures alone


async def test_a_holding_change_updates_the_features_in_the_same_call_and_publishes_them(
        world, profile) -> None:
    customer = await world.customer()
    today = datetime.now(UTC).date()
    after = await world.feed_tail()
    created = await world.holding(customer, product_type=H.PRODUCT_TYPE_SAVINGS_ACCOUNT, balance=world.money(500),
                                  open_date=today)
    assert minor((await world.features(customer)).aum) == 50_000
    changed = created
    changed.balance.CopyFrom(world.money(750, 250_000_000))
    await profile.UpdateHolding(H.UpdateHoldingRequest(
        holding=changed, update_mask=field_mask_pb2.FieldMask(paths=["balance"]), audit=AUDIT),
        metadata=CORE_BANKING)
    features = await world.features(customer)
    assert minor(features.aum) == 75_025 and features.product_count == 1

    mine = await world.published(after, {f"{customer}/features"}, 2)
    assert [e.change_type for e in mine] == [change_event_pb2.CHANGE_TYPE_CREATED,
                                            change_event_pb2.CHANGE_TYPE_UPDATED]
    published = features_pb2.CustomerFeatures()
    assert mine[-1].payload.Unpack(published)
    assert minor(published.aum) == 75_025 and published.name == f"{customer}/features"
    assert mine[-1].actor == "core-banking"

    await profile.DeleteHolding(H.DeleteHoldingRequest(name=created.name, audit=AUDIT),
                                metadata=CORE_BANKING)
    features = await world.features(customer)
    assert minor(features.aum) == 0 and features.product_count == 0


async def test_ingested_events_reach_the_features_and_the_feed(world, profile) -> None:
    customer = await world.customer()
    after = await world.feed_tail()
    now = datetime.now(UTC)
    await world.ingest(world.login(customer, now - timedelta(hours=1)), world.login(customer, now))
    features = await world.features_when(customer, lambda f: f.activity.login_count_30d == 2)
    assert features.activity.active_channel_count_90d == 1
    events = await world.published(after, {f"{customer}/features"}, 1)
    published = features_pb2.CustomerFeatures()
    assert len(events) == 1 and events[0].payload.Unpack(published)
    assert published.activity.login_count_30d == 2 and events[0].actor == "system:features"


async def test_a_customer_never_computed_gets_features_computed_on_read(world) -> None:
    customer = await world.customer()
    async with world.db.raw() as connection:
        await connection.execute("DELETE FROM customer_feature WHERE customer_id = $1", customer.split("/")[1])
    features = await world.features(customer)
    assert features.tenure_days == 1000 and features.product_count == 0 and minor(features.aum) == 0
    async with world.db.raw() as connection:
        stored = await connection.fetchval("SELECT count(*) FROM customer_feature WHERE customer_id = $1",
                                           customer.split("/")[1])
    assert stored == 0  # a read writes nothing


async def test_reads_are_audited(world) -> None:
    customer = await world.customer()
    await world.features(customer)  # returns once its audit record is durable
    async with world.db.raw() as connection:
        found = await connection.fetchval(
            "SELECT count(*) FROM audit_record WHERE action = 'features.read' AND resource_name = $1",
            f"{customer}/features")
    assert found == 1


async def test_a_relationship_manager_reads_only_their_own_book(world) -> None:
    customer = await world.customer(relationship_manager_id="rm-007")
    own = await world.features(customer, metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007"))
    assert own.name == f"{customer}/features"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await world.features(customer, metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-other"))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error.value) == "OUTSIDE_BOOK"


async def test_a_call_without_a_token_is_unauthenticated(world) -> None:
    customer = await world.customer()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await world.features(customer, metadata=())
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_unknown_customer_is_not_found(world) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await world.features("customers/NOBODY-HERE")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(error.value) == "CUSTOMER_NOT_FOUND"


@pytest.mark.parametrize("name", ["customers/C1", "customers/C 1/features", ""])
async def test_a_malformed_name_is_invalid_argument(profile, name) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetCustomerFeatures(features_pb2.GetCustomerFeaturesRequest(name=name, audit=AUDIT),
                                          metadata=bearer(Role.ADMIN))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in field_violations(error.value)


async def test_a_read_without_a_purpose_is_invalid_argument(world, profile) -> None:
    customer = await world.customer()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await profile.GetCustomerFeatures(features_pb2.GetCustomerFeaturesRequest(name=f"{customer}/features"),
                                          metadata=bearer(Role.ADMIN))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "audit.purpose" in field_violations(error.value)


async def test_a_customer_update_of_a_feature_input_recomputes_the_features(world, profile) -> None:
    customer = await world.customer()
    assert (await world.features(customer)).tenure_days == 1000
    current = (await profile.GetCustomer(pb.GetCustomerRequest(name=customer, audit=AUDIT), metadata=ADMIN)).customer
    onboarded = datetime.now(UTC).date() - timedelta(days=400)
    current.onboarded_on.CopyFrom(world.day(onboarded))
    await profile.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=current, update_mask=field_mask_pb2.FieldMask(paths=["onboarded_on"]), audit=AUDIT), metadata=ADMIN)
    assert (await world.features_when(customer, lambda f: f.tenure_days == 400)).tenure_days == 400
