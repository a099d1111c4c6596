"""RiskService alert rule RPCs against a real PostgreSQL, through a real in-process server."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.duration_pb2 import Duration
from google.type import money_pb2

from crm.risk.v1 import alert_pb2
from crm.risk.v1 import risk_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, field_violations, row_counts

HOUR = 3600
DAY = 24 * HOUR
OFFICER = bearer(Role.RISK_OFFICER, subject="ro-1")
OTHER_OFFICER = bearer(Role.RISK_OFFICER, subject="ro-2")
ADMIN = bearer(Role.ADMIN)
AUDITOR = bearer(Role.AUDITOR)
ANALYST = bearer(Role.ANALYST)
MARKETER = bearer(Role.MARKETER)
# What a create writes: none of it may change when a call is refused.
WRITTEN = ("alert_rule", "outbox_event")


async def create(risk, rule, metadata=OFFICER, request_id=""):  # type: ignore[no-untyped-def]
    response = await risk.CreateAlertRule(pb.CreateAlertRuleRequest(alert_rule=rule, request_id=request_id),
                                          metadata=metadata)
    return response.alert_rule


async def get(risk, name, metadata=OFFICER):  # type: ignore[no-untyped-def]
    return (await risk.GetAlertRule(pb.GetAlertRuleRequest(name=name), metadata=metadata)).alert_rule


async def update(risk, rule, paths, metadata=OFFICER):  # type: ignore[no-untyped-def]
    response = await risk.UpdateAlertRule(pb.UpdateAlertRuleRequest(
        alert_rule=rule, update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=metadata)
    return response.alert_rule


async def test_create_then_get_returns_the_rule(risk, new_rule) -> None:
    sent = new_rule()
    created = await create(risk, sent)
    fetched = await get(risk, created.name)
    assert created.name == f"alertRules/{sent.alert_rule_id}"
    assert fetched == created
    assert fetched.display_name == sent.display_name
    assert fetched.kind == alert_pb2.ALERT_RULE_KIND_LARGE_OUTFLOWS
    assert fetched.severity == alert_pb2.ALERT_SEVERITY_HIGH
    assert fetched.enabled is False, "rules are created disabled unless asked"
    assert fetched.window.ToSeconds() == 7 * DAY
    assert not fetched.HasField("response_sla") and not fetched.HasField("cooldown")
    assert fetched.WhichOneof("parameters") == "large_outflows"
    assert fetched.large_outflows.min_amount == money_pb2.Money(currency_code="CNY", units=500_000)
    assert fetched.large_outflows.min_balance_share == pytest.approx(0.3)
    assert fetched.creator == "ro-1"
    assert fetched.etag != "" and fetched.HasField("create_time")


@pytest.mark.parametrize(
    ("kind", "parameters"),
    [
        (alert_pb2.ALERT_RULE_KIND_CONTACT_DETAIL_CHANGES,
         {"contact_detail_changes": alert_pb2.ContactDetailChangeParameters(min_changes=3,
                                                                            fields=["mobile_phone", "email"])}),
        (alert_pb2.ALERT_RULE_KIND_ABNORMAL_TRANSACTIONS,
         {"abnormal_transactions": alert_pb2.AbnormalTransactionParameters(
             min_z_score=4.5, baseline_window=Duration(seconds=90 * DAY),
             min_amount=money_pb2.Money(currency_code="CNY", units=20_000, nanos=500_000_000), min_transactions=2)}),
        (alert_pb2.ALERT_RULE_KIND_COMPLAINTS_SPIKE,
         {"complaints_spike": alert_pb2.ComplaintsSpikeParameters(min_complaints=2, count_poor_survey_scores=True)}),
    ],
)
async def test_every_kind_round_trips_its_parameters(risk, new_rule, kind, parameters) -> None:
    sent = alert_pb2.AlertRule(display_name="rule", kind=kind, severity=alert_pb2.ALERT_SEVERITY_MEDIUM,
                               window=Duration(seconds=DAY), response_sla=Duration(seconds=4 * HOUR),
                               cooldown=Duration(seconds=0), enabled=True, **parameters)
    created = await create(risk, sent)
    assert created.alert_rule_id.startswith("rule-"), "an id is generated when none is given"
    fetched = await get(risk, created.name)
    field = next(iter(parameters))
    assert fetched.WhichOneof("parameters") == field
    assert getattr(fetched, field) == parameters[field]
    assert fetched.response_sla.ToSeconds() == 4 * HOUR and fetched.enabled


def _amount(**fields: object) -> money_pb2.Money:
    return money_pb2.Money(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"display_name": "  "}, "alert_rule.display_name"),
        ({"display_name": "x" * 201}, "alert_rule.display_name"),
        ({"description": "x" * 2001}, "alert_rule.description"),
        ({"alert_rule_id": "Bad_Id"}, "alert_rule.alert_rule_id"),
        ({"alert_rule_id": "9-lives"}, "alert_rule.alert_rule_id"),
        ({"alert_rule_id": "a" * 64}, "alert_rule.alert_rule_id"),
        ({"kind": alert_pb2.ALERT_RULE_KIND_UNSPECIFIED}, "alert_rule.kind"),
        ({"severity": alert_pb2.ALERT_SEVERITY_UNSPECIFIED}, "alert_rule.severity"),
        ({"severity": 12}, "alert_rule.severity"),
        ({"window": Duration(seconds=30 * 60)}, "alert_rule.window"),
        ({"window": Duration(seconds=91 * DAY)}, "alert_rule.window"),
        ({"window": Duration(seconds=DAY, nanos=-1)}, "alert_rule.window"),
        ({"response_sla": Duration(seconds=30 * 60)}, "alert_rule.response_sla"),
        ({"response_sla": Duration(seconds=8 * DAY)}, "alert_rule.response_sla"),
        ({"cooldown": Duration(seconds=-1)}, "alert_rule.cooldown"),
        ({"cooldown": Duration(seconds=91 * DAY)}, "alert_rule.cooldown"),
        ({"default_assignee": "e" * 65}, "alert_rule.default_assignee"),
        ({"large_outflows": alert_pb2.LargeOutflowParameters(min_balance_share=0.2)},
         "alert_rule.large_outflows.min_amount"),
        ({"large_outflows": alert_pb2.LargeOutflowParameters(min_amount=_amount(currency_code="CNY", units=-5))},
         "alert_rule.large_outflows.min_amount"),
        ({"large_outflows": alert_pb2.LargeOutflowParameters(min_amount=_amount(currency_code="cny", units=5))},
         "alert_rule.large_outflows.min_amount.currency_code"),
        ({"large_outflows": alert_pb2.LargeOutflowParameters(
            min_amount=_amount(currency_code="CNY", units=5, nanos=-1))}, "alert_rule.large_outflows.min_amount"),
        ({"large_outflows": alert_pb2.LargeOutflowParameters(
            min_amount=_amount(currency_code="CNY", units=5), min_balance_share=1.5)},
         "alert_rule.large_outflows.min_balance_share"),
        ({"large_outflows": alert_pb2.LargeOutflowParameters(
            min_amount=_amount(currency_code="CNY", units=5), before_maturity=Duration(seconds=91 * DAY))},
         "alert_rule.large_outflows.before_maturity"),
        ({"large_outflows": alert_pb2.LargeOutflowParameters(
            min_amount=_amount(currency_code="CNY", units=5), before_maturity=Duration(seconds=3600))},
         "alert_rule.large_outflows.before_maturity"),
        ({"complaints_spike": alert_pb2.ComplaintsSpikeParameters(min_complaints=2)}, "alert_rule.complaints_spike"),
        ({"kind": alert_pb2.ALERT_RULE_KIND_CONTACT_DETAIL_CHANGES,
          "contact_detail_changes": alert_pb2.ContactDetailChangeParameters(min_changes=1)},
         "alert_rule.contact_detail_changes.min_changes"),
        ({"kind": alert_pb2.ALERT_RULE_KIND_CONTACT_DETAIL_CHANGES,
          "contact_detail_changes": alert_pb2.ContactDetailChangeParameters(min_changes=2, fields=["phone"])},
         "alert_rule.contact_detail_changes.fields"),
        ({"kind": alert_pb2.ALERT_RULE_KIND_ABNORMAL_TRANSACTIONS,
          "abnormal_transactions": alert_pb2.AbnormalTransactionParameters(
              min_z_score=1.5, min_amount=_amount(currency_code="CNY", units=1))},
         "alert_rule.abnormal_transactions.min_z_score"),
        ({"kind": alert_pb2.ALERT_RULE_KIND_ABNORMAL_TRANSACTIONS,
          "abnormal_transactions": alert_pb2.AbnormalTransactionParameters(
              baseline_window=Duration(seconds=10 * DAY), min_amount=_amount(currency_code="CNY", units=1))},
         "alert_rule.abnormal_transactions.baseline_window"),
        ({"kind": alert_pb2.ALERT_RULE_KIND_ABNORMAL_TRANSACTIONS,
          "abnormal_transactions": alert_pb2.AbnormalTransactionParameters(
              min_transactions=101, min_amount=_amount(currency_code="CNY", units=1))},
         "alert_rule.abnormal_transactions.min_transactions"),
        ({"kind": alert_pb2.ALERT_RULE_KIND_COMPLAINTS_SPIKE,
          "complaints_spike": alert_pb2.ComplaintsSpikeParameters(min_complaints=0)},
         "alert_rule.complaints_spike.min_complaints"),
    ],
)
async def test_bad_field_is_invalid_argument_naming_it_and_writes_nothing(
    risk, risk_service, new_rule, overrides, field,
) -> None:
    before = await row_counts(risk_service, *WRITTEN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(risk, new_rule(**overrides))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert error_info(error.value).domain == "risk.crm"
    assert await row_counts(risk_service, *WRITTEN) == before


async def test_missing_parameters_and_bad_request_id_are_named_at_once(risk, new_rule) -> None:
    rule = new_rule(display_name="", severity=0)
    rule.ClearField("large_outflows")
    rule.ClearField("window")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(risk, rule, request_id="not-a-uuid")
    assert {"alert_rule.display_name", "alert_rule.severity", "alert_rule.window", "alert_rule.large_outflows",
            "request_id"} <= set(field_violations(error.value))


async def test_duplicate_id_is_already_exists(risk, new_rule) -> None:
    sent = new_rule()
    await create(risk, sent)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await create(risk, sent)
    assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(error.value).reason == "ALERT_RULE_EXISTS"


async def test_retry_with_the_same_request_id_returns_the_first_rule(risk, risk_service, new_rule) -> None:
    request_id = str(uuid.uuid4())
    first = await create(risk, new_rule(alert_rule_id=""), request_id=request_id)
    before = await row_counts(risk_service, *WRITTEN)
    again = await create(risk, new_rule(alert_rule_id=""), request_id=request_id)
    assert again.name == first.name
    assert await row_counts(risk_service, *WRITTEN) == before


async def test_update_changes_only_masked_fields_and_checks_the_etag(risk, risk_service, new_rule) -> None:
    created = await create(risk, new_rule())
    changes = alert_pb2.AlertRule(name=created.name, etag=created.etag, enabled=True, window=Duration(seconds=DAY),
                                  display_name="ignored: not in the mask")
    updated = await update(risk, changes, ["enabled", "window"])
    assert updated.enabled and updated.window.ToSeconds() == DAY
    assert updated.display_name == created.display_name
    assert updated.large_outflows == created.large_outflows
    assert updated.etag != created.etag
    before = await row_counts(risk_service, *WRITTEN)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(risk, alert_pb2.AlertRule(name=created.name, etag=created.etag, enabled=False), ["enabled"])
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert error_info(error.value).reason == "ETAG_MISMATCH"
    assert (await get(risk, created.name)).enabled
    assert await row_counts(risk_service, *WRITTEN) == before


async def test_update_of_one_parameter_keeps_the_others(risk, new_rule) -> None:
    created = await create(risk, new_rule())
    changes = alert_pb2.AlertRule(name=created.name, large_outflows=alert_pb2.LargeOutflowParameters(
        min_amount=money_pb2.Money(currency_code="CNY", units=800_000)))
    updated = await update(risk, changes, ["large_outflows.min_amount"])
    assert updated.large_outflows.min_amount.units == 800_000
    assert updated.large_outflows.min_balance_share == pytest.approx(0.3)
    replaced = await update(risk, alert_pb2.AlertRule(
        name=created.name, large_outflows=alert_pb2.LargeOutflowParameters(
            min_amount=money_pb2.Money(currency_code="USD", units=100_000))), ["large_outflows"])
    assert replaced.large_outflows.min_amount.currency_code == "USD"
    assert replaced.large_outflows.min_balance_share == 0


@pytest.mark.parametrize(
    ("paths", "changes", "field"),
    [
        ([], {}, "update_mask"),
        (["kind"], {"kind": alert_pb2.ALERT_RULE_KIND_COMPLAINTS_SPIKE}, "update_mask"),
        (["alert_rule_id"], {"alert_rule_id": "other"}, "update_mask"),
        (["creator"], {}, "update_mask"),
        (["complaints_spike.min_complaints"], {}, "update_mask"),
        (["large_outflows.nonsense"], {}, "update_mask"),
        (["window"], {}, "alert_rule.window"),
        (["severity"], {"severity": 9}, "alert_rule.severity"),
        (["large_outflows.min_balance_share"],
         {"large_outflows": alert_pb2.LargeOutflowParameters(min_balance_share=2.0)},
         "alert_rule.large_outflows.min_balance_share"),
    ],
)
async def test_bad_update_is_invalid_argument_and_changes_nothing(risk, new_rule, paths, changes, field) -> None:
    created = await create(risk, new_rule())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await update(risk, alert_pb2.AlertRule(name=created.name, **changes), paths)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)
    assert await get(risk, created.name) == created


async def test_update_of_a_missing_or_misnamed_rule(risk) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await update(risk, alert_pb2.AlertRule(name="alertRules/no-such-rule", enabled=True), ["enabled"])
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as misnamed:
        await update(risk, alert_pb2.AlertRule(name="rules/x", enabled=True), ["enabled"])
    assert misnamed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "alert_rule.name" in field_violations(misnamed.value)


async def test_delete_checks_the_etag_then_removes_the_rule(risk, new_rule) -> None:
    created = await create(risk, new_rule())
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await risk.DeleteAlertRule(pb.DeleteAlertRuleRequest(name=created.name, etag="999"), metadata=OFFICER)
    assert stale.value.code() == grpc.StatusCode.ABORTED
    await risk.DeleteAlertRule(pb.DeleteAlertRuleRequest(name=created.name, etag=created.etag), metadata=OFFICER)
    for call in (get(risk, created.name),
                 risk.DeleteAlertRule(pb.DeleteAlertRuleRequest(name=created.name), metadata=OFFICER)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(error.value).reason == "ALERT_RULE_NOT_FOUND"


@pytest.mark.parametrize("name", ["", "alertRules/", "alertRules/UPPER", "customers/c1"])
async def test_get_with_a_malformed_name_is_invalid_argument(risk, name) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await get(risk, name)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "name" in field_violations(error.value)


async def test_list_pages_by_id_and_filters(risk, new_rule) -> None:
    prefix = f"list-{uuid.uuid4().hex[:6]}"
    ids = sorted([(await create(risk, new_rule(alert_rule_id=f"{prefix}-{i}", enabled=i % 2 == 0))).alert_rule_id
                  for i in range(5)])
    seen, token = [], ""
    while True:
        page = await risk.ListAlertRules(pb.ListAlertRulesRequest(page_size=2, page_token=token), metadata=AUDITOR)
        assert len(page.alert_rules) <= 2
        seen += [r.alert_rule_id for r in page.alert_rules]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert [i for i in seen if i.startswith(prefix)] == ids
    enabled = await risk.ListAlertRules(pb.ListAlertRulesRequest(
        enabled_only=True, kind=alert_pb2.ALERT_RULE_KIND_LARGE_OUTFLOWS, page_size=1000), metadata=OFFICER)
    assert all(r.enabled and r.kind == alert_pb2.ALERT_RULE_KIND_LARGE_OUTFLOWS for r in enabled.alert_rules)
    assert [r.alert_rule_id for r in enabled.alert_rules if r.alert_rule_id.startswith(prefix)] == ids[0::2]
    first = await risk.ListAlertRules(pb.ListAlertRulesRequest(page_size=1), metadata=OFFICER)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await risk.ListAlertRules(pb.ListAlertRulesRequest(page_size=1, page_token=first.next_page_token,
                                                           enabled_only=True), metadata=OFFICER)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in field_violations(error.value)
    with pytest.raises(grpc.aio.AioRpcError) as bad_kind:
        await risk.ListAlertRules(pb.ListAlertRulesRequest(kind=42, page_size=-1), metadata=OFFICER)
    assert {"kind", "page_size"} <= set(field_violations(bad_kind.value))
    assert field_violations(bad_kind.value)["kind"] == "42 is not a known AlertRuleKind value"


async def test_calls_without_a_valid_token_are_unauthenticated(risk) -> None:
    for metadata in [(), (("authorization", "Bearer not-a-jwt"),), (("authorization", "Basic abc"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await risk.GetAlertRule(pb.GetAlertRuleRequest(name="alertRules/x"), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_roles_not_allowed_are_permission_denied_and_write_nothing(risk, risk_service, new_rule) -> None:
    before = await row_counts(risk_service, *WRITTEN)
    for metadata in (ANALYST, AUDITOR, MARKETER):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await create(risk, new_rule(), metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(error.value).reason == "ROLE_NOT_ALLOWED"
    assert await row_counts(risk_service, *WRITTEN) == before
    created = await create(risk, new_rule(), metadata=ADMIN)
    assert (await get(risk, created.name, metadata=AUDITOR)).name == created.name
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await get(risk, created.name, metadata=MARKETER)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
