"""Renewal tracking: profile's holding and customer events applied to campaign's tables as the one
follower of them does (the books and renewal tracking together), then `ListRenewals` through the
real server on a real PostgreSQL."""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import any_pb2
from google.type import date_pb2, money_pb2

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import care_pb2
from crm.common.v1 import change_event_pb2
from crm.profile.v1 import customer_pb2, holding_pb2
from crm_campaign.audience import peers
from crm_campaign.book import follower
from crm_campaign.dispatch.tables import dispatch
from crm_campaign.renewals import feed
from crm_campaign.renewals.model import RenewalState
from crmkit.auth import Role
from crmkit.testing import assert_enum_mirrors, bearer, field_violations
from crmkit.values import timestamp

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
CHANNEL = bearer(Role.CHANNEL_APP, subject="mobile-app")
H = holding_pb2
C = care_pb2
TODAY = datetime.now(UTC).date()
_positions = itertools.count(1)
_XID = int(time.time() * 1000)


def _cursor() -> str:
    return f"{_XID}.{next(_positions)}"


def _date(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def _event(resource_type: str, name: str, payload: Any, cursor: str = "") -> change_event_pb2.ChangeEvent:
    packed = any_pb2.Any()
    packed.Pack(payload)
    return change_event_pb2.ChangeEvent(
        resource_type=resource_type, resource_name=name, change_type=change_event_pb2.CHANGE_TYPE_UPDATED,
        payload=packed, cursor=cursor or _cursor(), occurred_at=timestamp(datetime.now(UTC)))


def holding(customer: str, holding_id: str, product_type: int, amount: int, *, opened: int,
            matures: int | None = None, product_code: str = "TD-1Y-CNY") -> change_event_pb2.ChangeEvent:
    """A holding event; `opened` and `matures` are days from today."""
    money = money_pb2.Money(currency_code="CNY", units=amount)
    message = H.Holding(name=f"customers/{customer}/holdings/{holding_id}", holding_id=holding_id,
                        product_code=product_code, product_type=product_type, currency="CNY", balance=money,
                        reporting_balance=money, open_date=_date(TODAY + timedelta(days=opened)),
                        status=H.HOLDING_STATUS_ACTIVE, source_system="core-banking")
    if matures is not None:
        message.maturity_date.CopyFrom(_date(TODAY + timedelta(days=matures)))
    return _event(feed.HOLDING_TYPE, message.name, message)


def managed(customer: str, manager: str) -> change_event_pb2.ChangeEvent:
    return _event(follower.CUSTOMER_TYPE, f"customers/{customer}",
                  customer_pb2.Customer(name=f"customers/{customer}", relationship_manager_id=manager))


async def apply(campaign_service: Any, *events: change_event_pb2.ChangeEvent) -> list[bool]:
    _, runtime = campaign_service
    async with runtime.db.unit_of_work() as uow:
        return [await peers.together(follower.apply, feed.apply)(uow, event) for event in events]


async def listed(campaigns: Any, metadata: Any = ANALYST, **filters: Any) -> pb.ListRenewalsResponse:
    return await campaigns.ListRenewals(pb.ListRenewalsRequest(**filters), metadata=metadata)


@pytest.fixture
async def book(campaign_service) -> Any:  # type: ignore[no-untyped-def]
    """Two managers' customers with maturities in every state; returns (manager a, manager b, tag)."""
    tag = uuid.uuid4().hex[:8]
    a, b = f"{tag}-a", f"{tag}-b"
    rm_a, rm_b = f"rm-{tag}-a", f"rm-{tag}-b"
    await apply(
        campaign_service, managed(a, rm_a), managed(b, rm_b),
        # a: one maturity ahead, one renewed into a new deposit two days after it matured
        holding(a, "td-ahead", H.PRODUCT_TYPE_TERM_DEPOSIT, 100_000, opened=-345, matures=20),
        holding(a, "td-old", H.PRODUCT_TYPE_TERM_DEPOSIT, 50_000, opened=-395, matures=-30),
        holding(a, "td-new", H.PRODUCT_TYPE_TERM_DEPOSIT, 48_000, opened=-28, matures=337,
                product_code="TD-3Y-CNY"),
        # b: partly reinvested, lapsed (into a savings account, which does not count), rolled over
        # in place, and one maturity beyond the window
        holding(b, "wm-1", H.PRODUCT_TYPE_WEALTH_MANAGEMENT, 80_000, opened=-200, matures=-20, product_code="WM-6M"),
        holding(b, "fund-1", H.PRODUCT_TYPE_FUND, 20_000, opened=-18, product_code="FUND-BAL"),
        holding(b, "td-gone", H.PRODUCT_TYPE_TERM_DEPOSIT, 10_000, opened=-380, matures=-15),
        holding(b, "sav-1", H.PRODUCT_TYPE_SAVINGS_ACCOUNT, 10_000, opened=-14, product_code="SAV-CNY"),
        holding(b, "td-roll", H.PRODUCT_TYPE_TERM_DEPOSIT, 30_000, opened=-405, matures=-40),
        holding(b, "td-roll", H.PRODUCT_TYPE_TERM_DEPOSIT, 30_500, opened=-405, matures=325),
        holding(b, "td-far", H.PRODUCT_TYPE_TERM_DEPOSIT, 5_000, opened=-265, matures=100),
    )
    return rm_a, rm_b, tag


def test_the_state_enum_mirrors_the_contract() -> None:
    assert_enum_mirrors(RenewalState, C.RenewalState, prefix="RENEWAL_STATE_")


async def test_renewals_are_decided_from_where_the_money_went(campaigns, book) -> None:  # type: ignore[no-untyped-def]
    rm_a, rm_b, tag = book
    mine = await listed(campaigns, relationship_manager_id=rm_a)
    assert [(r.account_id, r.state) for r in mine.renewals] == [
        ("td-old", C.RENEWAL_STATE_RENEWED), ("td-ahead", C.RENEWAL_STATE_UPCOMING)]
    renewed, ahead = mine.renewals
    assert (renewed.renewed_amount.units, renewed.renewed_product_code) == (48_000, "TD-3Y-CNY")
    assert renewed.maturing_amount == money_pb2.Money(currency_code="CNY", units=50_000)
    assert renewed.decide_date == _date(TODAY - timedelta(days=23))
    assert renewed.customer == f"customers/{tag}-a" and renewed.relationship_manager_id == rm_a
    assert not ahead.HasField("renewed_amount") and not ahead.HasField("decide_date")
    assert mine.summary.renewal_count == 2 and mine.summary.maturing_amount.units == 150_000
    assert mine.summary.renewed_amount.units == 48_000 and mine.summary.retention_rate == pytest.approx(0.96)

    theirs = await listed(campaigns, relationship_manager_id=rm_b)
    assert [(r.account_id, r.state) for r in theirs.renewals] == [
        ("td-roll", C.RENEWAL_STATE_RENEWED), ("wm-1", C.RENEWAL_STATE_PARTIALLY_RENEWED),
        ("td-gone", C.RENEWAL_STATE_LAPSED)]
    rolled, partly, lapsed = theirs.renewals
    assert (rolled.renewed_amount.units, rolled.renewed_product_code, rolled.decide_date) == (
        30_500, "TD-1Y-CNY", _date(TODAY))
    assert (partly.renewed_amount.units, partly.renewed_product_code) == (20_000, "FUND-BAL")
    assert (lapsed.renewed_amount.units, lapsed.renewed_product_code) == (0, "")
    summary = theirs.summary
    assert sorted((c.state, c.count) for c in summary.state_counts) == [
        (C.RENEWAL_STATE_RENEWED, 1), (C.RENEWAL_STATE_PARTIALLY_RENEWED, 1), (C.RENEWAL_STATE_LAPSED, 1)]
    assert summary.retention_rate == pytest.approx(50_500 / 120_000)


async def test_filters_pages_and_the_managers_own_book(campaigns, book) -> None:  # type: ignore[no-untyped-def]
    rm_a, rm_b, tag = book
    lapsed = await listed(campaigns, relationship_manager_id=rm_b, states=[C.RENEWAL_STATE_LAPSED])
    assert [r.account_id for r in lapsed.renewals] == ["td-gone"] and lapsed.summary.renewal_count == 1
    dated = await listed(campaigns, customer=f"customers/{tag}-b", maturity_from=_date(TODAY - timedelta(days=25)),
                         maturity_to=_date(TODAY))
    assert [r.account_id for r in dated.renewals] == ["wm-1", "td-gone"]
    pages, token = [], ""
    while True:
        page = await listed(campaigns, relationship_manager_id=rm_b, page_size=1, page_token=token)
        assert page.summary.renewal_count == 3, "the totals are the same on every page"
        pages.extend(r.account_id for r in page.renewals)
        token = page.next_page_token
        if not token:
            break
    assert pages == ["td-roll", "wm-1", "td-gone"]
    # A relationship manager sees only their own customers, whatever the filter says.
    own = await listed(campaigns, metadata=bearer(Role.RELATIONSHIP_MANAGER, subject=rm_a),
                       relationship_manager_id=rm_b)
    assert {r.relationship_manager_id for r in own.renewals} == {rm_a} and own.summary.renewal_count == 2


async def test_an_older_event_does_not_overwrite_a_newer_one(campaigns, campaign_service) -> None:  # type: ignore[no-untyped-def]
    customer = f"{uuid.uuid4().hex[:8]}-c"
    newer = holding(customer, "td-1", H.PRODUCT_TYPE_TERM_DEPOSIT, 70_000, opened=-300, matures=10)
    older = holding(customer, "td-1", H.PRODUCT_TYPE_TERM_DEPOSIT, 60_000, opened=-300, matures=10,
                    product_code="TD-OLD")
    older.cursor = f"{_XID - 1}.1"
    assert await apply(campaign_service, newer, older) == [True, False]
    [found] = (await listed(campaigns, customer=f"customers/{customer}")).renewals
    assert (found.maturing_amount.units, found.product_code, found.relationship_manager_id) == (
        70_000, "TD-1Y-CNY", "")


async def test_bad_filters_are_named_and_only_readers_list(campaigns) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await listed(campaigns, customer="clients/1", states=[9], maturity_from=_date(TODAY),
                     maturity_to=_date(TODAY - timedelta(days=1)), page_size=-1)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(bad.value)) >= {"customer", "states[0]", "maturity_to"}
    with pytest.raises(grpc.aio.AioRpcError) as not_a_date:
        await listed(campaigns, maturity_from=date_pb2.Date(year=2026, month=2, day=30))
    assert set(field_violations(not_a_date.value)) == {"maturity_from"}
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await listed(campaigns, metadata=CHANNEL)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_dispatch_inside_the_window_marks_the_renewal_contacted(  # type: ignore[no-untyped-def]
        campaigns, campaign_service, new_campaign) -> None:
    customer = f"{uuid.uuid4().hex[:8]}-d"
    await apply(campaign_service, holding(customer, "td-1", H.PRODUCT_TYPE_TERM_DEPOSIT, 40_000, opened=-340,
                                          matures=25))
    [before] = (await listed(campaigns, customer=f"customers/{customer}")).renewals
    assert before.state == C.RENEWAL_STATE_UPCOMING and not before.HasField("last_contact_time")
    created = (await campaigns.CreateCampaign(pb.CreateCampaignRequest(campaign=new_campaign()),
                                              metadata=bearer(Role.MARKETER, subject="marketer-a"))).campaign
    sent_at = datetime.now(UTC) - timedelta(hours=1)
    _, runtime = campaign_service
    async with runtime.db.unit_of_work() as uow:
        await uow.execute(sa.insert(dispatch).values(
            dispatch_id=uuid.uuid4().hex, campaign_id=created.campaign_id, customer_id=customer, offer_id="o-1",
            channel=5, state=2, sent_at=sent_at))
    [after] = (await listed(campaigns, customer=f"customers/{customer}")).renewals
    assert after.state == C.RENEWAL_STATE_CONTACTED
    assert after.last_contact_time.ToDatetime(tzinfo=UTC) == sent_at
