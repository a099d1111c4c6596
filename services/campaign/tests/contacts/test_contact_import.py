"""ImportContactHistory through CampaignService: a file and its mapping become contacts, bad rows
are reported per line, column and reason, strict imports with bad rows load nothing, re-imports
change nothing, and bad requests are refused whole."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import contact_import_pb2 as ci
from crm.common.v1 import operation_pb2
from crm_campaign.contacts.model import ContactOutcome, ContextType, ImportMode, PreviousOutcome
from crmkit.auth import Role
from crmkit.testing import assert_enum_mirrors, bearer, field_violations

MARKETER = bearer(Role.MARKETER, subject="marketer-a")
ANALYST = bearer(Role.ANALYST, subject="analyst-1")

HEADER = "id;channel;month;dow;attempt;pdays;poutcome;age;rate;y;duration\n"
ROWS = [
    "c-1;sms;5;mon;1;999;nonexistent;56;1.1;no;261\n",
    "c-2;call;5;tue;2;3;success;41;1.1;yes;100\n",
    "c-3;call;6;wed;1;999;failure;unknown;-1.8;no;40\n",
]


def mapping(**changes: Any) -> ci.ContactImportMapping:
    columns = [
        ci.ContactColumnMapping(column="channel", field="channel", value_map={"sms": "SMS", "call": "CALL_CENTRE"}),
        ci.ContactColumnMapping(column="month", field="contact_month"),
        ci.ContactColumnMapping(column="dow", field="contact_day_of_week",
                                value_map={"mon": "MONDAY", "tue": "TUESDAY", "wed": "WEDNESDAY"}),
        ci.ContactColumnMapping(column="attempt", field="attempt_number"),
        ci.ContactColumnMapping(column="pdays", field="days_since_previous_contact", value_map={"999": ""}),
        ci.ContactColumnMapping(column="poutcome", field="previous_outcome",
                                value_map={"nonexistent": "NONE", "failure": "FAILURE", "success": "SUCCESS"}),
        ci.ContactColumnMapping(column="age", context="age", context_type=ci.CONTACT_CONTEXT_TYPE_NUMBER),
        ci.ContactColumnMapping(column="rate", context="employment_variation_rate",
                                context_type=ci.CONTACT_CONTEXT_TYPE_NUMBER),
        ci.ContactColumnMapping(column="y", field="outcome", value_map={"yes": "ACCEPTED", "no": "DECLINED"}),
    ]
    fields: dict[str, Any] = {"customer_id": ci.ContactCustomerIdMapping(column="id", prefix="T-"),
                              "offer_type": "term-deposit", "columns": columns}
    fields.update(changes)
    return ci.ContactImportMapping(**fields)


def request(content: str, source: str, **changes: Any) -> ci.ImportContactHistoryRequest:
    fields: dict[str, Any] = {
        "file_name": "calls.csv", "content": content.encode(), "mapping": mapping(),
        "csv_options": ci.ContactCsvOptions(delimiter=";", null_values=["unknown"]),
        "mode": ci.CONTACT_IMPORT_MODE_LENIENT, "source_system": source, "request_id": str(uuid.uuid4())}
    fields.update(changes)
    return ci.ImportContactHistoryRequest(**fields)


async def run(campaigns: Any, body: ci.ImportContactHistoryRequest) -> tuple[Any, ci.ImportContactHistoryResult]:
    started = (await campaigns.ImportContactHistory(body, metadata=MARKETER)).operation
    assert started.kind == "campaign.contact_import"
    final = started
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=started.name), metadata=ANALYST,
                                                 timeout=120):
        final = update.operation
    result = ci.ImportContactHistoryResult()
    if final.state == operation_pb2.OPERATION_STATE_SUCCEEDED:
        assert final.response.Unpack(result)
    else:
        status = status_pb2.Status(code=final.error.code, details=final.error.details)
        found = [d for d in status.details if d.Unpack(result)]
        assert found, final.error.message
    return final, result


def test_domain_enums_mirror_the_contract() -> None:
    assert_enum_mirrors(ImportMode, ci.ContactImportMode, prefix="CONTACT_IMPORT_MODE_")
    assert_enum_mirrors(ContextType, ci.ContactContextType, prefix="CONTACT_CONTEXT_TYPE_")
    assert_enum_mirrors(ContactOutcome, ci.ContactOutcome, prefix="CONTACT_OUTCOME_")
    assert_enum_mirrors(PreviousOutcome, ci.PreviousOutcome, prefix="PREVIOUS_OUTCOME_")


async def test_contacts_import_with_their_context_and_bad_rows_are_reported(campaigns, count_rows) -> None:
    source = f"test-{uuid.uuid4().hex[:8]}"
    bad = ["c-4;fax;5;mon;1;999;nonexistent;30;1.1;no;10\n",       # line 5: unknown channel
           "c-5;sms;13;mon;0;999;nonexistent;old;1.1;no;10\n",      # line 6: month, attempt, age
           "c-6;sms;5\n"]                                           # line 7: too few cells
    before = await count_rows("imported_contact")
    final, result = await run(campaigns, request(HEADER + "".join(ROWS + bad), source))
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    assert (result.inserted_count, result.unchanged_count, result.bad_row_count) == (3, 0, 3)
    assert [(b.line, b.column, b.field, b.reason) for b in result.bad_rows] == [
        (5, "channel", "channel", "UNKNOWN_ENUM_VALUE"),
        (6, "month", "contact_month", "OUT_OF_RANGE"),
        (6, "attempt", "attempt_number", "OUT_OF_RANGE"),
        (6, "age", "context.age", "INVALID_FORMAT"),
        (7, "", "", "MALFORMED_ROW"),
    ]
    assert all("old" not in b.description for b in result.bad_rows)  # never the cell value
    metadata = ci.ImportContactHistoryMetadata()
    assert final.metadata.Unpack(metadata)
    assert list(metadata.unmapped_columns) == ["duration"]
    assert await count_rows("imported_contact") == before + 3

    again, unchanged = await run(campaigns, request(HEADER + "".join(ROWS), source))
    assert again.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    assert (unchanged.inserted_count, unchanged.unchanged_count) == (0, 3)
    assert await count_rows("imported_contact") == before + 3


async def test_a_strict_import_with_a_bad_row_loads_nothing(campaigns, count_rows) -> None:
    source = f"test-{uuid.uuid4().hex[:8]}"
    before = await count_rows("imported_contact")
    body = request(HEADER + "".join(ROWS) + "c-4;sms;5;mon;1;999;nonexistent;30;1.1;maybe;10\n", source,
                   mode=ci.CONTACT_IMPORT_MODE_STRICT)
    final, result = await run(campaigns, body)
    assert final.state == operation_pb2.OPERATION_STATE_FAILED
    assert final.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert (result.inserted_count, result.bad_row_count) == (0, 1)
    assert [(b.line, b.field, b.reason) for b in result.bad_rows] == [(5, "outcome", "UNKNOWN_ENUM_VALUE")]
    assert await count_rows("imported_contact") == before


async def test_a_bad_request_names_every_field_and_starts_nothing(campaigns, count_rows) -> None:
    before = await count_rows("operation"), await count_rows("imported_contact")
    columns = list(mapping().columns)
    columns.append(ci.ContactColumnMapping(column="duration", context="call_length",
                                           context_type=ci.CONTACT_CONTEXT_TYPE_NUMBER))
    columns.append(ci.ContactColumnMapping(column="missing", context="x"))
    body = request(HEADER + ROWS[0], "Bad Source", mode=ci.CONTACT_IMPORT_MODE_UNSPECIFIED,
                   mapping=mapping(columns=columns, offer_type=""))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await campaigns.ImportContactHistory(body, metadata=MARKETER)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(raised.value)
    assert set(violations) >= {"source_system", "mode", "mapping.offer_type", "mapping.columns[9].column",
                               "mapping.columns[10].context_type", "mapping.columns[10].column"}
    assert "POST_CONTACT_COLUMN" in violations["mapping.columns[9].column"]
    assert (await count_rows("operation"), await count_rows("imported_contact")) == before


async def test_only_marketers_and_admins_import(campaigns) -> None:
    for role in (Role.ANALYST, Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await campaigns.ImportContactHistory(request(HEADER + ROWS[0], "test-denied"), metadata=bearer(role))
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await campaigns.ImportContactHistory(request(HEADER + ROWS[0], "test-anon"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
