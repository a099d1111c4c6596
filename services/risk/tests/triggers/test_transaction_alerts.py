"""Abnormal-transactions and large-outflows rules fire as profile's `CustomerEvent` transactions
are applied by the customer follower (the read model's `on_customer_event`, in the consumer's
transaction): each transaction is counted once in the customer's running statistics (a replay to
the same or a fresh consumer changes nothing and raises nothing), the transactions themselves are
not kept, and amounts in another currency are skipped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2, message, timestamp_pb2
from google.protobuf.duration_pb2 import Duration
from google.type import date_pb2, money_pb2

from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, event_pb2, features_pb2, holding_pb2
from crm.risk.v1 import alert_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crm_risk.alerting.tables import alert
from crm_risk.alerts.repository import AlertRuleRepository
from crm_risk.customers.follower import follow_profile
from crm_risk.customers.repository import CustomerRepository
from crm_risk.customers.rules import AttributeNames
from crm_risk.customers.service import CustomerReadModel
from crm_risk.triggers.service import AlertTriggers
from crm_risk.triggers.tables import outflow_bucket, transaction_baseline
from crmkit.auth import Role
from crmkit.peer_feed import PeerFeedFollower
from crmkit.testing import bearer

OFFICER = bearer(Role.RISK_OFFICER, subject="ro-1")
DAY = 86400
DEBIT, CREDIT = event_pb2.TRANSACTION_DIRECTION_DEBIT, event_pb2.TRANSACTION_DIRECTION_CREDIT


class ProfileFeed:
    """Profile's events about one customer as its outbox publishes them, in feed order."""

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.seq = 0
        self.start = datetime.now(UTC) - timedelta(days=60)

    def _event(self, resource_type: str, name: str, payload: message.Message, at: datetime,
               change: int = change_event_pb2.CHANGE_TYPE_UPDATED) -> change_event_pb2.ChangeEvent:
        self.seq += 1
        packed, occurred = any_pb2.Any(), timestamp_pb2.Timestamp()
        packed.Pack(payload)
        occurred.FromDatetime(at)
        return change_event_pb2.ChangeEvent(
            cursor=f"{8000 + self.seq}.{self.seq}", event_id=str(uuid.uuid4()), resource_type=resource_type,
            resource_name=name, change_type=change, occurred_at=occurred, payload=packed, actor="system:test")

    def customer(self) -> change_event_pb2.ChangeEvent:
        return self._event("crm.profile.v1.Customer", f"customers/{self.customer_id}", customer_pb2.Customer(
            name=f"customers/{self.customer_id}", customer_id=self.customer_id,
            state=customer_pb2.CUSTOMER_STATE_ACTIVE, relationship_manager_id="rm-3", branch_id="b-3"), self.start)

    def features(self, aum: int) -> change_event_pb2.ChangeEvent:
        f = features_pb2.CustomerFeatures(name=f"customers/{self.customer_id}/features",
                                          aum=money_pb2.Money(currency_code="CNY", units=aum))
        return self._event("crm.profile.v1.CustomerFeatures", f.name, f, self.start)

    def transaction(self, amount: int, *, days: float, direction: int = DEBIT, currency: str = "CNY",
                    kind: int = event_pb2.TRANSACTION_KIND_CARD_PAYMENT) -> change_event_pb2.ChangeEvent:
        at = self.start + timedelta(days=days)
        event_id = uuid.uuid4().hex
        e = event_pb2.CustomerEvent(
            name=f"customers/{self.customer_id}/events/{event_id}", event_id=event_id,
            customer=f"customers/{self.customer_id}", event_type=event_pb2.EVENT_TYPE_TRANSACTION,
            channel=event_pb2.EVENT_CHANNEL_MOBILE_BANKING, source_system="core-banking",
            transaction=event_pb2.TransactionDetail(amount=money_pb2.Money(currency_code=currency, units=amount),
                                                    direction=direction, kind=kind))
        e.occur_time.FromDatetime(at)
        return self._event("crm.profile.v1.CustomerEvent", e.name, e, at, change_event_pb2.CHANGE_TYPE_EVENT)


@pytest.fixture
async def follow(risk_service: tuple[Any, Any], alerts_of: Any, movable_clock: Any) -> AsyncIterator[Any]:
    """A profile follower on its own cursor with the alert triggers, driven without a stream."""
    _, runtime = risk_service
    followers: list[PeerFeedFollower] = []

    def make() -> PeerFeedFollower:
        triggers = AlertTriggers(alerts=alerts_of(runtime, movable_clock()), alert_rules=AlertRuleRepository(),
                                 customers=CustomerRepository(), digest_key=b"test-key" * 4, currency="CNY")
        model = CustomerReadModel(repository=CustomerRepository(), attributes=AttributeNames(),
                                  on_customer_event=triggers.on_customer_event)
        follower = follow_profile(db=runtime.db, model=model, settings=runtime.settings, target="127.0.0.1:9",
                                  deadline_seconds=1.0, after_apply=triggers.after_apply,
                                  feed_name=f"test-{uuid.uuid4().hex}")
        followers.append(follower)
        return follower

    yield make
    for follower in followers:
        await follower.close()


async def create(risk: Any, rule: alert_pb2.AlertRule) -> alert_pb2.AlertRule:
    return (await risk.CreateAlertRule(pb.CreateAlertRuleRequest(alert_rule=rule), metadata=OFFICER)).alert_rule


async def alerts_of_rule(runtime: Any, rule_id: str) -> list[dict[str, Any]]:
    async with runtime.db.unit_of_work(read_only=True) as uow:
        rows = await uow.execute(sa.select(alert).where(alert.c.alert_rule_id == rule_id)
                                 .order_by(alert.c.trigger_time))
        return [dict(r) for r in rows.mappings()]


async def test_an_abnormal_debit_raises_one_alert_and_a_replay_none(risk: Any, risk_service: Any,
                                                                    follow: Any) -> None:
    _, runtime = risk_service
    rule = await create(risk, alert_pb2.AlertRule(
        alert_rule_id=f"abnormal-{uuid.uuid4().hex[:8]}", display_name="Abnormal spending",
        kind=alert_pb2.ALERT_RULE_KIND_ABNORMAL_TRANSACTIONS, severity=alert_pb2.ALERT_SEVERITY_HIGH,
        window=Duration(seconds=7 * DAY), enabled=True,
        abnormal_transactions=alert_pb2.AbnormalTransactionParameters(
            min_z_score=3, min_amount=money_pb2.Money(currency_code="CNY", units=1000))))
    cid = f"C{uuid.uuid4().hex[:10].upper()}"
    feed = ProfileFeed(cid)
    usual = [feed.customer()] + [feed.transaction(100 + 20 * (i % 2), days=i) for i in range(12)]
    # Large credits and foreign-currency debits are not debits against this baseline.
    others = [feed.transaction(90_000, days=12.5, direction=CREDIT), feed.transaction(90_000, days=12.6,
                                                                                      currency="USD")]
    spike = feed.transaction(5_000, days=13)
    follower = follow()

    assert await follower.consumer.apply_batch(usual + others) == 15
    assert await alerts_of_rule(runtime, rule.alert_rule_id) == []
    assert await follower.consumer.apply_batch([spike]) == 1
    [raised] = await alerts_of_rule(runtime, rule.alert_rule_id)
    assert raised["customer_id"] == cid and raised["relationship_manager_id"] == "rm-3"
    assert raised["trigger_time"] == feed.start + timedelta(days=13)
    assert raised["summary"] == "1 abnormal transactions within 7 days"
    [evidence] = raised["evidence"]
    assert evidence["resource"] == spike.resource_name and evidence["units"] == 5000
    assert evidence["currency_code"] == "CNY" and "debit" in evidence["description"]

    async def baseline() -> list[tuple[int, int]]:
        async with runtime.db.unit_of_work(read_only=True) as uow:
            rows = await uow.execute(sa.select(transaction_baseline.c.direction, transaction_baseline.c.count)
                                     .where(transaction_baseline.c.customer_id == cid)
                                     .order_by(transaction_baseline.c.direction))
            return [(r.direction, r._mapping["count"]) for r in rows]

    assert await baseline() == [(CREDIT, 1), (DEBIT, 13)]
    everything = [*usual, *others, spike]
    assert await follower.consumer.apply_batch(everything) == 0
    await follow().consumer.apply_batch(everything)  # consumed; the baselines' positions refuse them
    assert await baseline() == [(CREDIT, 1), (DEBIT, 13)]
    assert len(await alerts_of_rule(runtime, rule.alert_rule_id)) == 1


async def test_outflows_over_the_amount_and_share_within_the_window_raise_an_alert(risk: Any, risk_service: Any,
                                                                                   follow: Any) -> None:
    _, runtime = risk_service
    rule = await create(risk, alert_pb2.AlertRule(
        alert_rule_id=f"outflow-{uuid.uuid4().hex[:8]}", display_name="Large outflows",
        kind=alert_pb2.ALERT_RULE_KIND_LARGE_OUTFLOWS, severity=alert_pb2.ALERT_SEVERITY_CRITICAL,
        window=Duration(seconds=7 * DAY), enabled=True,
        large_outflows=alert_pb2.LargeOutflowParameters(
            min_amount=money_pb2.Money(currency_code="CNY", units=200_000), min_balance_share=0.3)))
    cid = f"C{uuid.uuid4().hex[:10].upper()}"
    feed = ProfileFeed(cid)
    follower = follow()
    await follower.consumer.apply_batch([
        feed.customer(), feed.features(aum=500_000),
        feed.transaction(150_000, days=1, kind=event_pb2.TRANSACTION_KIND_CASH_WITHDRAWAL),
        feed.transaction(150_000, days=9, kind=event_pb2.TRANSACTION_KIND_CASH_WITHDRAWAL),  # 8 days later
        feed.transaction(400_000, days=9.5, kind=event_pb2.TRANSACTION_KIND_TRANSFER),  # transfers not counted
        feed.transaction(300_000, days=10, direction=CREDIT)])
    assert await alerts_of_rule(runtime, rule.alert_rule_id) == []
    last = feed.transaction(100_000, days=12, kind=event_pb2.TRANSACTION_KIND_INVESTMENT_PURCHASE)
    await follower.consumer.apply_batch([last])
    [raised] = await alerts_of_rule(runtime, rule.alert_rule_id)
    # 250k out within 7 days against 500k left: a third of the 750k before.
    assert raised["summary"] == "outflows of 250000.00 CNY within 7 days (33% of the balance)"
    assert [e["resource"] for e in raised["evidence"]] == [last.resource_name]
    assert raised["severity"] == alert_pb2.ALERT_SEVERITY_CRITICAL

    await follow().consumer.apply_batch([last])
    assert len(await alerts_of_rule(runtime, rule.alert_rule_id)) == 1
    async with runtime.db.unit_of_work(read_only=True) as uow:
        total = await uow.scalar(sa.select(sa.func.sum(outflow_bucket.c.amount))
                                 .where(outflow_bucket.c.customer_id == cid))
    assert total == 800_000  # hourly sums only, each debit once


async def test_a_rule_watching_maturities_counts_outflows_before_a_holding_matures(risk: Any, risk_service: Any,
                                                                                   follow: Any) -> None:
    _, runtime = risk_service
    rule = await create(risk, alert_pb2.AlertRule(
        alert_rule_id=f"maturity-{uuid.uuid4().hex[:8]}", display_name="Outflows before maturity",
        kind=alert_pb2.ALERT_RULE_KIND_LARGE_OUTFLOWS, severity=alert_pb2.ALERT_SEVERITY_HIGH,
        window=Duration(seconds=7 * DAY), enabled=True,
        large_outflows=alert_pb2.LargeOutflowParameters(
            min_amount=money_pb2.Money(currency_code="CNY", units=50_000), min_balance_share=0.3,
            before_maturity=Duration(seconds=14 * DAY))))
    fetched = await risk.GetAlertRule(pb.GetAlertRuleRequest(name=rule.name), metadata=OFFICER)
    assert fetched.alert_rule.large_outflows.before_maturity.seconds == 14 * DAY
    cid = f"C{uuid.uuid4().hex[:10].upper()}"
    feed = ProfileFeed(cid)
    follower = follow()
    maturity = (feed.start + timedelta(days=30)).date()
    deposit = holding_pb2.Holding(
        name=f"customers/{cid}/holdings/TD-1", product_code="TD12M", product_type=holding_pb2.PRODUCT_TYPE_TERM_DEPOSIT,
        reporting_balance=money_pb2.Money(currency_code="CNY", units=100_000),
        maturity_date=date_pb2.Date(year=maturity.year, month=maturity.month, day=maturity.day))
    await follower.consumer.apply_batch([
        feed.customer(), feed._event("crm.profile.v1.Holding", deposit.name, deposit, feed.start),
        feed.transaction(200_000, days=5, kind=event_pb2.TRANSACTION_KIND_CASH_WITHDRAWAL)])  # 25 days before
    assert await alerts_of_rule(runtime, rule.alert_rule_id) == []
    last = feed.transaction(60_000, days=20, kind=event_pb2.TRANSACTION_KIND_CASH_WITHDRAWAL)  # 10 days before
    await follower.consumer.apply_batch([last])
    [raised] = await alerts_of_rule(runtime, rule.alert_rule_id)
    # 60k out within the window against the maturing deposit's 100k left: 60 / (100 + 60).
    assert raised["summary"] == "outflows of 60000.00 CNY within 7 days (38% of the balance)"
    assert [e["resource"] for e in raised["evidence"]] == [last.resource_name, f"customers/{cid}/holdings/TD-1"]
