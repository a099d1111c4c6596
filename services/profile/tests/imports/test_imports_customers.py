"""ImportCustomers end to end: the in-process server, its spawned workers, a real PostgreSQL."""

from __future__ import annotations

import io
import json
import uuid
from datetime import date
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from google.type import decimal_pb2

from crm.common.v1 import audit_pb2, change_event_pb2, operation_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2, data_class_pb2, history_pb2, import_pb2, operations_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, error_reason, eventually, field_violations, row_counter

ADMIN = bearer(Role.ADMIN, subject="loader")
READER = bearer(Role.RISK_OFFICER)  # sees personal data in clear and every book
PURPOSE = audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_CUSTOMER_SERVICE)
SUCCEEDED = operation_pb2.OPERATION_STATE_SUCCEEDED
FAILED = operation_pb2.OPERATION_STATE_FAILED
HEADER = ["id", "type", "name", "born", "sex", "phone", "email", "city", "country", "job", "notes"]


def people(prefix: str) -> list[list[str]]:
    """Rows of HEADER: 2 good, then one with two bad fields, one with an unknown gender."""
    return [
        ["1", "individual", " Li   Wei ", "14/03/1985", "M", "+8613812345678", "Li.Wei@Example.com", "Beijing", "CN",
         "teacher", "vip"],
        ["2", "individual", "Wang Fang", "01/02/1990", "F", "", "", "", "", "", ""],
        ["3", "individual", "Zhao Lei", "31/02/1990", "M", "0771234", "", "", "", "", ""],
        ["4", "individual", "Chen Jing", "", "X", "", "", "", "", "", ""],
    ]


def mapping(prefix: str, **extra: Any) -> dict[str, Any]:
    columns = [
        {"column": "type", "field": "customer_type"},
        {"column": "name", "field": "full_name"},
        {"column": "born", "field": "birth_date", "dateFormat": "%d/%m/%Y"},
        {"column": "sex", "field": "gender", "valueMap": {"M": "MALE", "F": "FEMALE"}},
        {"column": "phone", "field": "mobile_phone"},
        {"column": "email", "field": "email"},
        {"column": "city", "field": "address.locality"},
        {"column": "country", "field": "address.region_code"},
        {"column": "job", "field": "occupation"},
    ]
    return {"customerId": {"column": "id", "prefix": prefix}, "columns": columns, **extra}


async def get(profile: Any, customer_id: str) -> customer_pb2.Customer:
    return (await profile.GetCustomer(pb.GetCustomerRequest(name=f"customers/{customer_id}", audit=PURPOSE),
                                      metadata=READER)).customer


async def count_with_prefix(service: Any, table: str, prefix: str, column: str = "customer_id") -> int:
    _, runtime = service
    async with runtime.db.raw() as connection:
        return int(await connection.fetchval(
            f"SELECT count(*) FROM {table} WHERE {column} LIKE $1", f"%{prefix}%"))  # noqa: S608 - test constants


def reason_of(operation: operation_pb2.Operation) -> str:
    for detail in operation.error.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


async def test_a_lenient_import_loads_the_good_rows_and_reports_each_bad_field(
        importer, profile, profile_service) -> None:
    p = importer.prefix()
    data = importer.csv([HEADER, *people(p)])
    operation, result = await importer.run(data, mapping(p))
    assert operation.state == SUCCEEDED
    assert (result.inserted_count, result.updated_count, result.unchanged_count, result.bad_row_count) == (2, 0, 0, 2)
    assert [(b.line, b.column, b.field, b.reason) for b in result.bad_rows] == [
        (4, "born", "birth_date", "INVALID_DATE"),
        (4, "phone", "mobile_phone", "INVALID_FORMAT"),
        (5, "sex", "gender", "UNKNOWN_ENUM_VALUE"),
    ]
    for bad in result.bad_rows:  # the rule, never the value
        assert "0771234" not in bad.description and "31/02" not in bad.description and "X" not in bad.description
    assert (operation.progress.done, operation.progress.total, operation.progress.failed) == (4, 4, 2)
    metadata = import_pb2.ImportCustomersMetadata()
    operation.metadata.Unpack(metadata)
    assert list(metadata.unmapped_columns) == ["notes"] and metadata.source_system == "legacy-cif"

    first = await get(profile, f"{p}1")
    assert (first.full_name, first.email, first.mobile_phone) == ("Li Wei", "li.wei@example.com", "+8613812345678")
    assert (first.birth_date.year, first.birth_date.month, first.birth_date.day) == (1985, 3, 14)
    assert first.gender == customer_pb2.GENDER_MALE and first.customer_type == customer_pb2.CUSTOMER_TYPE_INDIVIDUAL
    assert (first.address.locality, first.address.region_code, first.occupation) == ("Beijing", "CN", "teacher")
    assert first.onboarded_on.year >= 2026 and first.etag == "1"
    assert (await get(profile, f"{p}2")).full_name == "Wang Fang"


async def test_imported_personal_data_is_encrypted_and_every_write_is_audited_and_published(
        importer, profile, profile_service) -> None:
    p = importer.prefix()
    await importer.run(importer.csv([HEADER, *people(p)]), mapping(p))
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        sealed = await connection.fetchrow("SELECT * FROM customer WHERE customer_id = $1", f"{p}1")
        events = await connection.fetch(
            "SELECT * FROM outbox_event WHERE resource_name LIKE $1 ORDER BY cursor", f"customers/{p}%")
        audits = await connection.fetch(
            "SELECT action, principal FROM audit_record WHERE resource_name LIKE $1", f"customers/{p}%")
        history = await connection.fetch(
            "SELECT field, new_text, source, source_system, origin FROM field_change WHERE customer_id = $1",
            f"{p}1")
        confirmed = await connection.fetchval(
            "SELECT count(*) FROM field_confirmation WHERE customer_id LIKE $1", f"{p}%")
    assert b"Li Wei" not in sealed["full_name_sealed"] and sealed["mobile_phone_index"] is not None
    assert sealed["source_system"] == "legacy-cif"
    assert [e["resource_name"] for e in events] == [f"customers/{p}1", f"customers/{p}2"]
    assert {e["change_type"] for e in events} == {change_event_pb2.CHANGE_TYPE_CREATED}
    assert {e["actor"] for e in events} == {"loader"}
    payload = customer_pb2.Customer()
    packed = any_pb2.Any()
    packed.ParseFromString(events[0]["payload"])
    packed.Unpack(payload)
    assert payload.name == f"customers/{p}1" and "full_name" in payload.masked_fields  # masked for the feed
    assert payload.etag == "1"
    assert sorted((a["action"], a["principal"]) for a in audits) == [("customer.create", "loader")] * 2
    # the creation is one history entry naming the fields set (no values), and no confirmation rows
    (created,) = history
    assert created["field"] == "" and created["origin"].startswith("operations/")
    assert set(json.loads(created["new_text"])) >= {"full_name", "mobile_phone", "occupation", "address"}
    assert "Li Wei" not in created["new_text"] and (created["source"], created["source_system"]) == (2, "legacy-cif")
    assert confirmed == 0
    listed = (await profile.ListFieldChanges(history_pb2.ListFieldChangesRequest(
        parent=f"customers/{p}1", fields=["occupation", "mobile_phone"], audit=PURPOSE), metadata=READER)).field_changes
    assert [(c.field, c.old_value, c.new_value, c.source, c.origin) for c in listed] == [
        ("occupation", "", "teacher", history_pb2.CHANGE_SOURCE_IMPORT, created["origin"]),
        ("mobile_phone", "", "+8613812345678", history_pb2.CHANGE_SOURCE_IMPORT, created["origin"]),
    ]


async def test_importing_the_same_file_again_changes_nothing(importer, profile, profile_service) -> None:
    p = importer.prefix()
    data = importer.csv([HEADER, *people(p)])
    await importer.run(data, mapping(p))
    before = await get(profile, f"{p}1")
    counts = [await count_with_prefix(profile_service, "outbox_event", p, "resource_name"),
              await count_with_prefix(profile_service, "field_change", p),
              await count_with_prefix(profile_service, "audit_record", p, "resource_name")]
    operation, result = await importer.run(data, mapping(p))
    assert operation.state == SUCCEEDED
    assert (result.inserted_count, result.updated_count, result.unchanged_count, result.bad_row_count) == (0, 0, 2, 2)
    assert [await count_with_prefix(profile_service, "outbox_event", p, "resource_name"),
            await count_with_prefix(profile_service, "field_change", p),
            await count_with_prefix(profile_service, "audit_record", p, "resource_name")] == counts
    after = await get(profile, f"{p}1")
    assert after.etag == before.etag and after.update_time == before.update_time


async def test_a_changed_file_updates_only_the_changed_customers(importer, profile, profile_service) -> None:
    p = importer.prefix()
    rows = people(p)[:2]
    await importer.run(importer.csv([HEADER, *rows]), mapping(p))
    rows[0][9] = "engineer"  # occupation of customer 1
    rows[1][8] = ""  # an empty cell leaves a value alone
    operation, result = await importer.run(importer.csv([HEADER, *rows]), mapping(p), sourceSystem="hr-feed")
    assert (result.inserted_count, result.updated_count, result.unchanged_count) == (0, 1, 1)
    changed = await get(profile, f"{p}1")
    assert changed.occupation == "engineer" and changed.etag == "2" and changed.full_name == "Li Wei"
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        events = await connection.fetch(
            "SELECT resource_name, change_type FROM outbox_event WHERE resource_name LIKE $1 ORDER BY cursor",
            f"customers/{p}%")
        change = await connection.fetchrow(
            "SELECT * FROM field_change WHERE customer_id = $1 AND field = 'occupation' ORDER BY field_change_id DESC",
            f"{p}1")
    assert events[-1]["resource_name"] == f"customers/{p}1" and events[-1]["change_type"] == 2
    assert len(events) == 3
    assert (change["old_text"], change["new_text"], change["source_system"]) == ("teacher", "engineer", "hr-feed")
    assert change["origin"] == operation.name


async def test_a_row_fills_in_a_customer_created_through_the_api(importer, profile, new_customer) -> None:
    created = (await profile.CreateCustomer(pb.CreateCustomerRequest(customer=new_customer()),
                                            metadata=bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007"))).customer
    data = importer.csv([["cif", "job"], [created.customer_id, "surgeon"]])
    _, result = await importer.run(data, {"customerId": {"column": "cif"},
                                                  "columns": [{"column": "job", "field": "occupation"}]})
    assert result.updated_count == 1, result
    merged = await get(profile, created.customer_id)
    assert merged.occupation == "surgeon" and merged.full_name == "Li Wei"
    assert merged.id_document.number == "11010519491231002X" and merged.etag == str(int(created.etag) + 1)


async def test_a_strict_import_with_a_bad_row_loads_nothing(importer, profile_service) -> None:
    p = importer.prefix()
    operation, result = await importer.run(importer.csv([HEADER, *people(p)]), mapping(p), mode="IMPORT_MODE_STRICT")
    assert operation.state == FAILED
    assert operation.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert reason_of(operation) == "IMPORT_HAS_BAD_ROWS"
    assert (result.inserted_count, result.updated_count, result.unchanged_count, result.bad_row_count) == (0, 0, 0, 2)
    assert len(result.bad_rows) == 3
    assert await count_with_prefix(profile_service, "customer", p) == 0
    assert await count_with_prefix(profile_service, "outbox_event", p, "resource_name") == 0


async def test_a_strict_import_of_good_rows_loads_them(importer, profile_service) -> None:
    p = importer.prefix()
    operation, result = await importer.run(importer.csv([HEADER, *people(p)[:2]]), mapping(p),
                                           mode="IMPORT_MODE_STRICT")
    assert operation.state == SUCCEEDED and result.inserted_count == 2
    assert await count_with_prefix(profile_service, "customer", p) == 2


async def test_validate_only_counts_what_would_happen_and_writes_nothing(importer, profile_service) -> None:
    p = importer.prefix()
    operation, result = await importer.run(importer.csv([HEADER, *people(p)]), mapping(p), validateOnly=True)
    assert operation.state == SUCCEEDED
    assert (result.inserted_count, result.bad_row_count) == (2, 2)
    assert await count_with_prefix(profile_service, "customer", p) == 0
    assert await count_with_prefix(profile_service, "field_change", p) == 0


async def test_more_bad_rows_than_allowed_fail_the_import(importer, profile_service) -> None:
    p = importer.prefix()
    operation, result = await importer.run(importer.csv([HEADER, *people(p)]), mapping(p), maxBadRows="1")
    assert operation.state == FAILED and reason_of(operation) == "TOO_MANY_BAD_ROWS"
    assert result.bad_row_count == 2 and result.inserted_count == 0
    assert await count_with_prefix(profile_service, "customer", p) == 0


async def test_a_later_row_with_an_earlier_id_is_a_duplicate(importer) -> None:
    p = importer.prefix()
    rows = [HEADER, *people(p)[:2], people(p)[0]]
    _, result = await importer.run(importer.csv(rows), mapping(p))
    assert result.inserted_count == 2
    assert [(b.line, b.column, b.field, b.reason) for b in result.bad_rows] == [
        (4, "id", "customer_id", "DUPLICATE_CUSTOMER_ID")]
    assert "line 2" in result.bad_rows[0].description


async def test_malformed_rows_are_reported_whole(importer) -> None:
    p = importer.prefix()
    data = importer.csv([HEADER, people(p)[0]]) + b"9,only,three\n" + importer.csv([people(p)[1]])
    _, result = await importer.run(data, mapping(p))
    assert result.inserted_count == 2
    assert [(b.line, b.column, b.field, b.reason) for b in result.bad_rows] == [(3, "", "", "MALFORMED_ROW")]


async def test_files_without_ids_use_line_numbers_and_other_delimiters(importer, profile) -> None:
    p = importer.prefix()
    data = importer.csv([["name", "kind"], ["Li Wei", "person"], ["Wang Fang", "person"]], delimiter=";")
    _, result = await importer.run(data, {
        "customerId": {"lineNumber": True, "prefix": p},
        "columns": [{"column": "name", "field": "full_name"},
                    {"column": "kind", "field": "customer_type", "valueMap": {"person": "INDIVIDUAL"}}]},
        csvOptions={"delimiter": ";"})
    assert result.inserted_count == 2, result
    assert (await get(profile, f"{p}3")).full_name == "Wang Fang"


async def test_parquet_files_import_like_csv(importer, profile) -> None:
    p = importer.prefix()
    table = pa.table({"cif": [f"{p}P1", f"{p}P2"], "name": ["Li Wei", "Wang Fang"],
                      "born": [date(1980, 5, 6), None], "n": [1, 2]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    operation, result = await importer.run(buffer.getvalue(), {
        "customerId": {"column": "cif"},
        "columns": [{"column": "name", "field": "full_name"}, {"column": "born", "field": "birth_date"},
                    {"column": "n", "field": "customer_type", "valueMap": {"1": "INDIVIDUAL", "2": "ORGANISATION"}}]},
        head={"format": import_pb2.IMPORT_FILE_FORMAT_PARQUET, "file_name": "people.parquet"})
    assert operation.state == SUCCEEDED and result.inserted_count == 2, result
    second = await get(profile, f"{p}P2")
    assert second.customer_type == customer_pb2.CUSTOMER_TYPE_ORGANISATION and not second.HasField("birth_date")
    assert (await get(profile, f"{p}P1")).birth_date.year == 1980


async def test_custom_attributes_are_checked_against_the_catalogue_and_stored(importer, profile) -> None:
    score = f"score_{uuid.uuid4().hex[:8]}"
    await profile.CreateAttributeDefinition(attribute_pb2.CreateAttributeDefinitionRequest(
        attribute_definition=attribute_pb2.AttributeDefinition(
            attribute_id=score, display_name="Credit score", value_type=attribute_pb2.ATTRIBUTE_VALUE_TYPE_INT,
            data_class=data_class_pb2.DATA_CLASS_FINANCIAL, source_system="card-system",
            validation=attribute_pb2.AttributeValidation(
                min_value=decimal_pb2.Decimal(value="300"), max_value=decimal_pb2.Decimal(value="850")))),
        metadata=ADMIN)
    p = importer.prefix()
    data = importer.csv([["id", "name", "score"], ["1", "Li Wei", "619"], ["2", "Wang Fang", "900"],
                         ["3", "Zhao Lei", "n/a"]])
    _, result = await importer.run(data, {
        "customerId": {"column": "id", "prefix": p},
        "columns": [{"column": "name", "field": "full_name"}, {"column": "score", "attribute": score},
                    {"column": "name", "field": "customer_type", "defaultValue": "INDIVIDUAL",
                     "valueMap": {"Li Wei": "", "Wang Fang": "", "Zhao Lei": ""}}]})
    assert result.inserted_count == 1, result
    assert [(b.line, b.field, b.reason) for b in result.bad_rows] == [
        (3, f"attributes.{score}", "ATTRIBUTE_VALIDATION_FAILED"), (4, f"attributes.{score}", "INVALID_FORMAT")]
    assert (await get(profile, f"{p}1")).attributes[score].int_value == 619
    _, again = await importer.run(data, {
        "customerId": {"column": "id", "prefix": p},
        "columns": [{"column": "name", "field": "full_name"}, {"column": "score", "attribute": score},
                    {"column": "name", "field": "customer_type", "defaultValue": "INDIVIDUAL",
                     "valueMap": {"Li Wei": "", "Wang Fang": "", "Zhao Lei": ""}}]})
    assert (again.unchanged_count, again.updated_count) == (1, 0)


async def test_an_undeclared_attribute_is_not_found_and_nothing_starts(importer, profile, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("operation")
    upload = await importer.upload(importer.csv([["id", "name", "x"], ["1", "Li Wei", "2"]]))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await importer.start(upload.name, {"customerId": {"column": "id"},
                                           "columns": [{"column": "x", "attribute": "never_declared"}]})
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(raised.value) == "ATTRIBUTE_NOT_FOUND"
    assert await count("operation") == before


async def test_a_bad_request_names_every_field_and_starts_nothing(importer, profile, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("operation")
    upload = await importer.upload(importer.csv([HEADER, *people("x")]))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.ImportCustomers(importer.request(
            upload.name, {"customerId": {"prefix": "bad prefix!"},
                          "columns": [{"column": "name", "field": "shoe_size"}, {"column": "", "field": "email"}]},
            mode="IMPORT_MODE_UNSPECIFIED", sourceSystem="", csvOptions={"encoding": "EBCDIC"},
            requestId="nope"), metadata=ADMIN)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in field_violations(raised.value)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await profile.ImportCustomers(importer.request(
            upload.name, {"customerId": {"prefix": "bad prefix!"},
                          "columns": [{"column": "name", "field": "shoe_size"}, {"column": "", "field": "email"}]},
            mode="IMPORT_MODE_UNSPECIFIED", sourceSystem="", csvOptions={"encoding": "EBCDIC"}), metadata=ADMIN)
    assert set(field_violations(raised.value)) == {
        "mapping.customer_id", "mapping.customer_id.prefix", "mapping.columns[0].field", "mapping.columns[1].column",
        "mode", "source_system", "csv_options.encoding"}
    assert await count("operation") == before


async def test_a_column_the_file_lacks_is_invalid(importer, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("operation")
    upload = await importer.upload(importer.csv([HEADER, *people("x")]))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await importer.start(upload.name, {"customerId": {"column": "id"},
                                           "columns": [{"column": "name", "field": "full_name"},
                                                       {"column": "Name", "field": "email"}]})
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(raised.value)) == {"mapping.columns[1].column"}
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # read with the wrong delimiter: one column only
        await importer.start(upload.name, mapping("x"), csvOptions={"delimiter": ";"})
    assert "mapping.customer_id.column" in field_violations(raised.value)
    assert await count("operation") == before


async def test_an_unknown_or_malformed_upload(importer, profile) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await importer.start(f"importUploads/{uuid.uuid4()}", mapping("x"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(raised.value) == "UPLOAD_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await importer.start("uploads/1", mapping("x"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "upload" in field_violations(raised.value)


async def test_a_retried_import_returns_the_first_operation(importer, profile_service) -> None:
    p = importer.prefix()
    upload = await importer.upload(importer.csv([HEADER, *people(p)[:2]]))
    request_id = str(uuid.uuid4())
    first = await importer.start(upload.name, mapping(p), requestId=request_id)
    again = await importer.start(upload.name, mapping(p), requestId=request_id)
    assert again.name == first.name
    done = await importer.wait(first.name)
    assert importer.result(done).inserted_count == 2
    assert await count_with_prefix(profile_service, "customer", p) == 2


async def test_cancelling_an_import_loads_nothing(importer, profile, profile_service) -> None:
    p = importer.prefix()
    rows = [[str(n), "individual", f"Customer {n}", "", "F", "", "", "", "", "", ""] for n in range(1, 40_001)]
    upload = await importer.upload(importer.csv([HEADER, *rows]), chunk=1024 * 1024)
    started = await importer.start(upload.name, mapping(p))

    async def state() -> int:
        return (await profile.GetOperation(operations_pb2.GetOperationRequest(name=started.name),
                                           metadata=ADMIN)).operation.state

    await eventually(state, until=lambda s: s != operation_pb2.OPERATION_STATE_PENDING, interval=0.01,
                     what="the import running")  # cancel as soon as it runs, not after a guessed time
    cancelling = (await profile.CancelOperation(operations_pb2.CancelOperationRequest(name=started.name),
                                                metadata=ADMIN)).operation
    assert cancelling.state in (operation_pb2.OPERATION_STATE_RUNNING, operation_pb2.OPERATION_STATE_CANCELLED)
    final = await importer.wait(started.name)
    assert final.state == operation_pb2.OPERATION_STATE_CANCELLED and final.HasField("end_time")
    assert await count_with_prefix(profile_service, "customer", p) == 0
    _, runtime = profile_service
    async with runtime.db.raw() as connection:
        scratch = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE $1",
            f"import_%_{started.name.removeprefix('operations/').replace('-', '')}")
    assert scratch == 0


@pytest.mark.parametrize("role", [Role.ANALYST, Role.RELATIONSHIP_MANAGER, Role.MARKETER])
async def test_only_the_platform_may_import(role, importer, profile, profile_service) -> None:
    count = row_counter(profile_service)
    before = await count("operation")
    upload = await importer.upload(importer.csv([HEADER, *people("x")]))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await importer.start(upload.name, mapping("x"), metadata=bearer(role))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await count("operation") == before


async def test_rows_for_merged_or_erased_customers_are_bad(importer, profile_service) -> None:
    p = importer.prefix()
    await importer.run(importer.csv([HEADER, *people(p)[:2]]), mapping(p))
    _, runtime = profile_service
    async with runtime.db.raw() as connection:  # as MergeCustomers leaves the merged record
        await connection.execute("UPDATE customer SET state = 2 WHERE customer_id = $1", f"{p}2")
    rows = people(p)[:2]
    rows[1][9] = "pilot"
    _, result = await importer.run(importer.csv([HEADER, *rows]), mapping(p))
    assert (result.unchanged_count, result.updated_count, result.bad_row_count) == (1, 0, 1)
    assert [(b.line, b.column, b.field, b.reason) for b in result.bad_rows] == [
        (3, "id", "customer_id", "CUSTOMER_NOT_ACTIVE")]
