"""GetContactPreferences and UpdateContactPreferences through the real server on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.type import date_pb2, dayofweek_pb2, timeofday_pb2

from crm.common.v1 import audit_pb2
from crm.profile.v1 import consent_pb2 as c
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, change_feed, field_violations, next_events

AUDIT = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")
ADMIN = bearer(Role.ADMIN)
MARKETER = bearer(Role.MARKETER)


def window(start: int, end: int, *days: int) -> c.ContactWindow:
    return c.ContactWindow(days=list(days), start_time=timeofday_pb2.TimeOfDay(hours=start),  # type: ignore[arg-type]
                           end_time=timeofday_pb2.TimeOfDay(hours=end))


async def customer(profile, new_customer, **overrides) -> str:  # type: ignore[no-untyped-def]
    created = await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer(**overrides)), metadata=RM)
    return created.customer.name


async def get(profile, parent, metadata=MARKETER) -> c.ContactPreferences:  # type: ignore[no-untyped-def]
    response = await profile.GetContactPreferences(c.GetContactPreferencesRequest(
        name=f"{parent}/contactPreferences", audit=AUDIT), metadata=metadata)
    return response.contact_preferences


async def update(profile, parent, paths, metadata=RM, etag="", **fields):  # type: ignore[no-untyped-def]
    preferences = c.ContactPreferences(name=f"{parent}/contactPreferences", etag=etag, **fields)
    response = await profile.UpdateContactPreferences(c.UpdateContactPreferencesRequest(
        contact_preferences=preferences, update_mask=field_mask_pb2.FieldMask(paths=paths), audit=AUDIT),
        metadata=metadata)
    return response.contact_preferences


async def test_every_customer_starts_with_empty_preferences_and_its_language(profile, new_customer) -> None:
    parent = await customer(profile, new_customer, preferred_language="zh-CN")
    prefs = await get(profile, parent)
    assert prefs.name == f"{parent}/contactPreferences"
    assert list(prefs.preferred_channels) == [] and not prefs.do_not_contact
    assert prefs.language == "zh-CN" and prefs.etag


async def test_update_sets_channels_windows_and_checks_the_etag(profile, new_customer) -> None:
    parent = await customer(profile, new_customer)
    first = await get(profile, parent)
    updated = await update(
        profile, parent, ["preferred_channels", "contact_windows", "time_zone"], etag=first.etag,
        preferred_channels=[c.CONTACT_CHANNEL_WECHAT, c.CONTACT_CHANNEL_SMS],
        contact_windows=[window(9, 12, dayofweek_pb2.MONDAY, dayofweek_pb2.FRIDAY), window(18, 24)],
        time_zone="Asia/Shanghai")
    assert list(updated.preferred_channels) == [c.CONTACT_CHANNEL_WECHAT, c.CONTACT_CHANNEL_SMS]
    assert updated.contact_windows[1].end_time.hours == 24 and updated.time_zone == "Asia/Shanghai"
    assert updated.etag != first.etag and updated.update_time.seconds > 0
    assert (await get(profile, parent)).contact_windows[0].days == [dayofweek_pb2.MONDAY, dayofweek_pb2.FRIDAY]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, parent, ["time_zone"], etag=first.etag, time_zone="Europe/Paris")
    assert error.value.code() == grpc.StatusCode.ABORTED


async def test_do_not_contact_needs_a_reason_and_clears_with_it(profile, new_customer) -> None:
    parent = await customer(profile, new_customer)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, parent, ["do_not_contact"], do_not_contact=True)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "contact_preferences.do_not_contact_reason" in field_violations(error.value)
    assert not (await get(profile, parent)).do_not_contact
    flagged = await update(profile, parent, ["do_not_contact", "do_not_contact_reason", "do_not_contact_note"],
                           do_not_contact=True, do_not_contact_reason=c.DO_NOT_CONTACT_REASON_OPEN_COMPLAINT,
                           do_not_contact_note="CASE-2026-00042")
    assert flagged.do_not_contact and flagged.do_not_contact_time.seconds > 0
    cleared = await update(profile, parent, ["do_not_contact"], do_not_contact=False)
    assert not cleared.do_not_contact and cleared.do_not_contact_reason == 0 and cleared.do_not_contact_note == ""


async def test_the_flag_lapses_after_its_last_day(profile, new_customer, profile_service) -> None:
    import sqlalchemy as sa

    parent = await customer(profile, new_customer)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    flagged = await update(profile, parent, ["do_not_contact", "do_not_contact_reason", "do_not_contact_until"],
                           do_not_contact=True, do_not_contact_reason=c.DO_NOT_CONTACT_REASON_VULNERABLE,
                           do_not_contact_until=date_pb2.Date(year=tomorrow.year, month=tomorrow.month,
                                                              day=tomorrow.day))
    assert flagged.do_not_contact and flagged.do_not_contact_until.day == tomorrow.day
    _, runtime = profile_service
    async with runtime.db.engine.begin() as connection:  # time passes
        await connection.execute(sa.text("UPDATE contact_preference SET do_not_contact_until = current_date - 1"
                                         " WHERE customer_id = :c"), {"c": parent.removeprefix("customers/")})
    assert not (await get(profile, parent)).do_not_contact


async def test_the_language_is_the_customers(profile, new_customer) -> None:
    parent = await customer(profile, new_customer, preferred_language="zh-CN")
    await update(profile, parent, ["language"], language="en")
    got = await profile.GetCustomer(pb.GetCustomerRequest(name=parent, audit=AUDIT), metadata=RM)
    assert got.customer.preferred_language == "en"


@pytest.mark.parametrize(("paths", "fields", "bad"), [
    (["contact_windows"], {"contact_windows": [window(9, 12)]}, "contact_preferences.time_zone"),
    (["contact_windows", "time_zone"], {"contact_windows": [window(12, 9)], "time_zone": "Asia/Shanghai"},
     "contact_preferences.contact_windows[0].end_time"),
    (["contact_windows", "time_zone"], {"contact_windows": [window(9, 12), window(11, 13, 2)],
                                        "time_zone": "Asia/Shanghai"}, "contact_preferences.contact_windows[1]"),
    (["time_zone"], {"time_zone": "Mars/Olympus"}, "contact_preferences.time_zone"),
    (["preferred_channels"], {"preferred_channels": [1, 1]}, "contact_preferences.preferred_channels[1]"),
    (["language"], {"language": "!!"}, "contact_preferences.language"),
    (["etag"], {}, "update_mask"),
    ([], {}, "update_mask"),
])
async def test_bad_preferences_are_named_and_change_nothing(profile, new_customer, paths, fields, bad) -> None:
    parent = await customer(profile, new_customer)
    before = await get(profile, parent)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, parent, paths, **fields)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad in field_violations(error.value)
    assert await get(profile, parent) == before


async def test_a_start_time_is_required_in_each_window(profile, new_customer) -> None:
    parent = await customer(profile, new_customer)
    no_start = c.ContactWindow(end_time=timeofday_pb2.TimeOfDay(hours=10))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, parent, ["contact_windows", "time_zone"], contact_windows=[no_start],
                     time_zone="UTC")
    assert "contact_preferences.contact_windows[0].start_time" in field_violations(error.value)


async def test_changes_go_out_on_the_feed_and_roles_are_checked(profile, new_customer, profile_service) -> None:
    parent = await customer(profile, new_customer)
    feed = change_feed(profile, pb.WatchChangesRequest, ADMIN)
    after = await feed_tail(profile_service)
    await update(profile, parent, ["do_not_contact", "do_not_contact_reason"], do_not_contact=True,
                 do_not_contact_reason=c.DO_NOT_CONTACT_REASON_CUSTOMER_REQUEST)
    events = await next_events(feed, after, 1, resource_types=["crm.profile.v1.ContactPreferences"])
    payload = c.ContactPreferences()
    events[0].payload.Unpack(payload)
    assert events[0].resource_name == f"{parent}/contactPreferences" and payload.do_not_contact
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(profile, parent, ["time_zone"], metadata=MARKETER, time_zone="UTC")
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(profile, "customers/NOPE-404")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def feed_tail(profile_service) -> str:  # type: ignore[no-untyped-def]
    """The newest change-feed cursor, from the database: reading the feed up to its tail takes long
    once the session's other tests have filled it."""
    import sqlalchemy as sa

    _, runtime = profile_service
    async with runtime.db.engine.connect() as connection:
        return str((await connection.execute(sa.text("SELECT coalesce(max(cursor), 0) FROM outbox_event"))).scalar())
