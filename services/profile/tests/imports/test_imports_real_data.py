"""The real data sets in ../shared/data import through their mapping files, with no code changes.

Skipped when the data sets are absent (a clone without `shared/`). They load 51,188 customers,
so they run against a profile service and database of their own: the session's shared database
stays small for the suites that scan every customer (quality report, erasure).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

import crm_profile
from crm.common.v1 import audit_pb2, operation_pb2
from crm.profile.v1 import attribute_pb2, customer_pb2, import_pb2, profile_service_pb2_grpc
from crm.profile.v1 import profile_service_pb2 as pb
from crm_profile.app import SPEC
from crmkit.auth import Role
from crmkit.testing import DatabaseFactory, bearer, migrated_database, running_service, shared_data_dir

ADMIN = bearer(Role.ADMIN, subject="data-engineering")
READER = bearer(Role.RISK_OFFICER)
MAPPINGS = Path(crm_profile.__file__).resolve().parents[2] / "mappings"


@pytest.fixture(scope="module")
async def own_profile(database_factory: DatabaseFactory) -> AsyncIterator[Any]:
    """A profile service on a database of its own, for these tests only."""
    shared_data_dir()
    url = await migrated_database(database_factory, SPEC)
    keys = {"encryption_keys": f"k1:{base64.b64encode(os.urandom(32)).decode()}", "active_key_id": "k1",
            "blind_index_key": base64.b64encode(os.urandom(32)).decode(), "matcher_enabled": False}
    async with running_service(SPEC, database_url=url, **keys) as (channel, _):
        yield profile_service_pb2_grpc.ProfileServiceStub(channel)


@pytest.fixture
def loader(own_profile: Any, importer: Any) -> Any:
    """The import helpers, driving the service of these tests."""
    return type(importer)(own_profile)


def load(name: str) -> dict[str, Any]:
    return json.loads((MAPPINGS / name).read_text())


async def declare_attributes(profile: Any, mapping: dict[str, Any]) -> None:
    """What the `crm` tool does first: declare the attributes the mapping writes (once)."""
    for raw in mapping.get("attributes", []):
        definition = json_format.ParseDict(raw, attribute_pb2.AttributeDefinition())
        try:
            await profile.CreateAttributeDefinition(
                attribute_pb2.CreateAttributeDefinitionRequest(attribute_definition=definition), metadata=ADMIN)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise


async def run(importer: Any, data: bytes, mapping: dict[str, Any], **changes: Any
              ) -> tuple[operation_pb2.Operation, import_pb2.ImportCustomersResult]:
    request = {**mapping["request"], **changes}
    upload = await importer.upload(data, chunk=1024 * 1024, file_name=mapping["file"],
                                   format=import_pb2.ImportFileFormat.Value(mapping["format"]))
    body = json_format.ParseDict({**request, "upload": upload.name}, import_pb2.ImportCustomersRequest())
    started = (await importer.profile.ImportCustomers(body, metadata=ADMIN)).operation
    operation = await importer.wait(started.name, seconds=300)
    return operation, importer.result(operation)


async def get(profile: Any, customer_id: str) -> customer_pb2.Customer:
    return (await profile.GetCustomer(pb.GetCustomerRequest(
        name=f"customers/{customer_id}", audit=audit_pb2.AuditContext(purpose=audit_pb2.ACCESS_PURPOSE_RISK)),
        metadata=READER)).customer


async def test_the_churn_set_imports_through_its_mapping_once(loader, own_profile) -> None:
    data = (shared_data_dir("Churn_Modelling.csv") / "Churn_Modelling.csv").read_bytes()
    mapping = load("churn_modelling.json")
    await declare_attributes(own_profile, mapping)

    operation, result = await run(loader, data, mapping)
    assert operation.state == operation_pb2.OPERATION_STATE_SUCCEEDED, operation.error
    assert (result.inserted_count, result.updated_count, result.bad_row_count) == (10_000, 0, 0)
    metadata = import_pb2.ImportCustomersMetadata()
    operation.metadata.Unpack(metadata)
    assert list(metadata.unmapped_columns) == ["RowNumber"]
    first = await get(own_profile, "CHURN-15634602")  # line 2 of the file
    assert (first.full_name, first.gender, first.address.region_code) == ("Hargrave", customer_pb2.GENDER_FEMALE, "FR")
    assert first.attributes["credit_score"].int_value == 619
    # The age as the file states it, never a birth date the file does not give.
    assert first.attributes["age_years"].int_value == 42 and not first.birth_date.year
    assert first.attributes["exited"].bool_value is True
    assert first.attributes["account_balance"].decimal_value.value == "0"

    again, unchanged = await run(loader, data, mapping)  # re-running the same file changes nothing
    assert again.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    assert (unchanged.inserted_count, unchanged.updated_count, unchanged.unchanged_count) == (0, 0, 10_000)
    assert (await get(own_profile, "CHURN-15634602")).etag == first.etag

    # A strict run of a changed file with one bad row loads nothing, not even the good change.
    lines = data.decode().splitlines(keepends=True)
    lines[1] = lines[1].replace(",619,", ",620,")
    lines[7] = lines[7].replace(",Male,", ",Robot,")
    strict, report = await run(loader, "".join(lines).encode(), mapping, mode="IMPORT_MODE_STRICT")
    assert strict.state == operation_pb2.OPERATION_STATE_FAILED
    assert strict.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert report.bad_row_count == 1 and report.updated_count == 0
    assert [(b.line, b.column, b.reason) for b in report.bad_rows][:1] == [(8, "Gender", "UNKNOWN_ENUM_VALUE")]
    assert (await get(own_profile, "CHURN-15634602")).attributes["credit_score"].int_value == 619


@pytest.mark.slow  # 41,188 rows imported twice: ~18 s on two shared cores (the churn one's 10,000: ~11 s)
async def test_the_bank_marketing_set_imports_with_line_number_ids(loader, own_profile) -> None:
    data = (shared_data_dir("bank-additional-full.csv") / "bank-additional-full.csv").read_bytes()
    mapping = load("bank_marketing.json")
    await declare_attributes(own_profile, mapping)

    operation, result = await run(loader, data, mapping)
    assert operation.state == operation_pb2.OPERATION_STATE_SUCCEEDED, operation.error
    assert (result.inserted_count, result.bad_row_count) == (41_188, 0)
    first = await get(own_profile, "UCI-BANK-2")  # the header is line 1
    assert first.occupation == "housemaid" and first.customer_type == customer_pb2.CUSTOMER_TYPE_INDIVIDUAL
    assert first.attributes["marital_status"].enum_value == "married"
    assert first.attributes["education_level"].enum_value == "basic.4y"
    assert first.attributes["credit_in_default"].bool_value is False
    assert "has_housing_loan" in first.attributes and not first.birth_date.year  # age is not a birth date
    assert "credit_in_default" not in (await get(own_profile, "UCI-BANK-3")).attributes  # 'unknown' is no value

    again, unchanged = await run(loader, data, mapping)
    assert again.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    assert (unchanged.inserted_count, unchanged.updated_count, unchanged.unchanged_count) == (0, 0, 41_188)
