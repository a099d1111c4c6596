"""The risk change feed: outbox rows written with each alert rule change, streamed by WatchChanges."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2

from crm.common.v1 import change_event_pb2
from crm.risk.v1 import alert_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crmkit.auth import Role
from crmkit.outbox import parse_cursor
from crmkit.testing import bearer, change_feed, next_events, tail_cursor

FEED = bearer(Role.SERVICE, subject="svc-campaign")


def feed(risk):  # type: ignore[no-untyped-def]
    """Opens the risk change feed as the platform service that reads it."""
    return change_feed(risk, pb.WatchChangesRequest, FEED)
OFFICER = bearer(Role.RISK_OFFICER, subject="ro-1")


async def test_rule_created_updated_and_deleted_appear_on_the_feed_in_order(risk, new_rule) -> None:
    cursor = await tail_cursor(feed(risk))
    created = (await risk.CreateAlertRule(pb.CreateAlertRuleRequest(alert_rule=new_rule()),
                                          metadata=OFFICER)).alert_rule
    await risk.UpdateAlertRule(pb.UpdateAlertRuleRequest(
        alert_rule=alert_pb2.AlertRule(name=created.name, enabled=True),
        update_mask=field_mask_pb2.FieldMask(paths=["enabled"])), metadata=OFFICER)
    await risk.DeleteAlertRule(pb.DeleteAlertRuleRequest(name=created.name), metadata=OFFICER)
    events = await next_events(feed(risk), cursor, 3, resource_types=["crm.risk.v1.AlertRule"])
    assert [(e.resource_name, e.change_type) for e in events] == [
        (created.name, change_event_pb2.CHANGE_TYPE_CREATED),
        (created.name, change_event_pb2.CHANGE_TYPE_UPDATED),
        (created.name, change_event_pb2.CHANGE_TYPE_DELETED),
    ]
    assert {e.resource_type for e in events} == {"crm.risk.v1.AlertRule"}, "deletions keep their resource type"
    assert all(e.actor == "ro-1" for e in events)
    assert [parse_cursor(e.cursor) for e in events] == sorted(parse_cursor(e.cursor) for e in events)
    payload = alert_pb2.AlertRule()
    assert events[1].payload.Unpack(payload)
    assert payload.name == created.name and payload.enabled
    assert not events[2].payload.value, "a deletion carries no payload"


async def test_a_malformed_cursor_is_invalid_argument(risk) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in risk.WatchChanges(pb.WatchChangesRequest(after_cursor="-1"), metadata=FEED):
            pass
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_feed_readers_need_the_service_role(risk) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in risk.WatchChanges(pb.WatchChangesRequest(), metadata=OFFICER):
            pass
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
