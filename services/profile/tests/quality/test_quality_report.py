"""GetDataQualityReport against a real PostgreSQL, through the in-process server.

Other tests share the database, so each test files its customers under a source system of its
own (set directly in the table: the API records `crm`) and reads that source's rows exactly.
"""

from __future__ import annotations

import uuid

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2
from google.type import decimal_pb2

from crm.profile.v1 import attribute_pb2, data_class_pb2, quality_pb2
from crm.profile.v1 import profile_service_pb2 as pb
from crmkit.auth import Role
from crmkit.testing import bearer, field_violations

ADMIN = bearer(Role.ADMIN)
ANALYST = bearer(Role.ANALYST)
AUDITOR = bearer(Role.AUDITOR)
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-007")


async def file_under_source(profile, profile_service, customers, **columns):  # type: ignore[no-untyped-def]
    """Create the customers and move them to a fresh source system; returns its name."""
    source = f"qa-{uuid.uuid4().hex[:8]}"
    for customer in customers:
        await profile.CreateCustomer(pb.CreateCustomerRequest(customer=customer), metadata=ADMIN)
    _, runtime = profile_service
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.text("UPDATE customer SET source_system = :s WHERE customer_id = ANY(:ids)"),
                                 {"s": source, "ids": [c.customer_id for c in customers]})
    return source


async def set_columns(profile_service, customer_id: str, **columns: object) -> None:
    """Write stored values directly, as legacy data would hold them (the API refuses them)."""
    _, runtime = profile_service
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.text(f"UPDATE customer SET {assignments} WHERE customer_id = :id"),  # noqa: S608
                                 {**columns, "id": customer_id})


async def report(profile, metadata=ANALYST, **fields):  # type: ignore[no-untyped-def]
    return (await profile.GetDataQualityReport(quality_pb2.GetDataQualityReportRequest(**fields),
                                               metadata=metadata)).report


def unique_phone() -> str:
    return f"+86139{uuid.uuid4().int % 10**8:08d}"


def row(report, field, source=""):  # type: ignore[no-untyped-def]
    (found,) = [r for r in report.fields if r.field == field and r.source_system == source]
    return found


async def test_completeness_validity_and_duplicates_per_source(profile, profile_service, new_customer) -> None:
    shared = unique_phone()
    customers = [new_customer(mobile_phone=unique_phone()), new_customer(email="", mobile_phone=unique_phone()),
                 new_customer(email="", mobile_phone=shared), new_customer(mobile_phone=shared)]
    source = await file_under_source(profile, profile_service, customers)
    await set_columns(profile_service, customers[0].customer_id, nationality="China")
    result = await report(profile, source_systems=[source], fields=["email", "nationality", "mobile_phone"])
    email = row(result, "email", source)
    assert (email.population_count, email.filled_count, email.completeness_percent) == (4, 2, 50.0)
    nationality = row(result, "nationality", source)
    assert (nationality.invalid_count, nationality.error_rate_percent) == (1, 25.0)
    assert [(v.rule, v.count) for v in nationality.violations] == [("ISO_3166_ALPHA2", 1)]
    assert quality_pb2.QUALITY_FLAG_ERROR_RATE_ABOVE_THRESHOLD in nationality.flags
    phone = row(result, "mobile_phone", source)
    assert phone.duplicate_value_count == 2 and phone.completeness_expected
    assert not email.completeness_expected  # e-mail is not expected by the default configuration
    # The all-sources rows come first, in field order, then the per-source rows.
    assert [(r.field, r.source_system) for r in result.fields] == [
        ("nationality", ""), ("mobile_phone", ""), ("email", ""),
        ("nationality", source), ("mobile_phone", source), ("email", source)]
    assert result.customer_count >= 4 and result.compute_time.seconds > 0
    assert result.thresholds.min_completeness_percent == 98.0 and result.thresholds.max_error_rate_percent == 2.0


async def test_thresholds_from_the_request_override_the_configured_ones(profile, profile_service,
                                                                       new_customer) -> None:
    customers = [new_customer(), new_customer(mobile_phone="")]
    source = await file_under_source(profile, profile_service, customers)
    default = row(await report(profile, source_systems=[source], fields=["mobile_phone"]), "mobile_phone", source)
    assert default.completeness_percent == 50.0
    assert list(default.flags) == [quality_pb2.QUALITY_FLAG_COMPLETENESS_BELOW_THRESHOLD]
    relaxed = await report(profile, source_systems=[source], fields=["mobile_phone"],
                           thresholds=quality_pb2.QualityThresholds(field_thresholds=[
                               quality_pb2.FieldThreshold(field="mobile_phone", min_completeness_percent=40)]))
    assert list(row(relaxed, "mobile_phone", source).flags) == []
    assert row(relaxed, "mobile_phone", source).min_completeness_percent == 40.0
    general = await report(profile, source_systems=[source], fields=["mobile_phone"],
                           thresholds=quality_pb2.QualityThresholds(min_completeness_percent=10))
    assert row(general, "mobile_phone", source).min_completeness_percent == 10.0


async def test_attribute_values_that_no_longer_pass_tightened_rules_count_as_invalid(
    profile, profile_service, new_customer,
) -> None:
    attribute_ids = {}
    for name, data_class in (("clear", data_class_pb2.DATA_CLASS_FINANCIAL),
                             ("sealed", data_class_pb2.DATA_CLASS_SPECIAL_CATEGORY)):
        sent = attribute_pb2.AttributeDefinition(
            attribute_id=f"q_{uuid.uuid4().hex[:10]}", display_name=name, source_system="crm", data_class=data_class,
            value_type=attribute_pb2.ATTRIBUTE_VALUE_TYPE_INT, completeness_expected=True)
        await profile.CreateAttributeDefinition(attribute_pb2.CreateAttributeDefinitionRequest(
            attribute_definition=sent), metadata=ADMIN)
        attribute_ids[name] = sent.attribute_id
    customers = []
    for score in (100, 500, 900):
        customer = new_customer()
        for attribute_id in attribute_ids.values():
            customer.attributes[attribute_id].int_value = score
        customers.append(customer)
    source = await file_under_source(profile, profile_service, [*customers, new_customer()])
    for attribute_id in attribute_ids.values():
        await profile.UpdateAttributeDefinition(attribute_pb2.UpdateAttributeDefinitionRequest(
            attribute_definition=attribute_pb2.AttributeDefinition(
                name=f"attributeDefinitions/{attribute_id}", validation=attribute_pb2.AttributeValidation(
                    min_value=decimal_pb2.Decimal(value="300"), max_value=decimal_pb2.Decimal(value="850"))),
            update_mask=field_mask_pb2.FieldMask(paths=["validation"])), metadata=ADMIN)
    result = await report(profile, source_systems=[source])
    for attribute_id in attribute_ids.values():
        for source_system in ("", source):
            found = row(result, f"attributes.{attribute_id}", source_system)
            assert (found.filled_count, found.invalid_count) == (3, 2)
            assert [(v.rule, v.count) for v in found.violations] == [("RANGE", 2)]
            assert found.completeness_expected
        assert row(result, f"attributes.{attribute_id}", source).completeness_percent == 75.0


async def test_a_pattern_rule_is_checked_in_sql(profile, profile_service, new_customer) -> None:
    attribute_id = f"q_{uuid.uuid4().hex[:10]}"
    await profile.CreateAttributeDefinition(attribute_pb2.CreateAttributeDefinitionRequest(
        attribute_definition=attribute_pb2.AttributeDefinition(
            attribute_id=attribute_id, display_name="code", source_system="crm",
            data_class=data_class_pb2.DATA_CLASS_NON_PERSONAL, value_type=attribute_pb2.ATTRIBUTE_VALUE_TYPE_STRING)),
        metadata=ADMIN)
    customers = []
    for code in ("AB1234", "ab12", "XY9999"):
        customer = new_customer()
        customer.attributes[attribute_id].string_value = code
        customers.append(customer)
    source = await file_under_source(profile, profile_service, customers)
    await profile.UpdateAttributeDefinition(attribute_pb2.UpdateAttributeDefinitionRequest(
        attribute_definition=attribute_pb2.AttributeDefinition(
            name=f"attributeDefinitions/{attribute_id}",
            validation=attribute_pb2.AttributeValidation(pattern=r"[A-Z]{2}\d{4}")),
        update_mask=field_mask_pb2.FieldMask(paths=["validation"])), metadata=ADMIN)
    found = row(await report(profile, source_systems=[source], fields=[f"attributes.{attribute_id}"]),
                f"attributes.{attribute_id}", source)
    assert (found.filled_count, found.invalid_count) == (3, 1)
    assert [(v.rule, v.count) for v in found.violations] == [("PATTERN", 1)]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"fields": ["mobile_phone", "shoe_size"]}, "fields[1]"),
        ({"fields": ["attributes.not_declared_here"]}, "fields[0]"),
        ({"thresholds": quality_pb2.QualityThresholds(min_completeness_percent=150)},
         "thresholds.min_completeness_percent"),
        ({"thresholds": quality_pb2.QualityThresholds(max_error_rate_percent=-1)}, "thresholds.max_error_rate_percent"),
        ({"thresholds": quality_pb2.QualityThresholds(field_thresholds=[
            quality_pb2.FieldThreshold(field="email", min_completeness_percent=1),
            quality_pb2.FieldThreshold(field="email", max_error_rate_percent=1)])},
         "thresholds.field_thresholds[1].field"),
    ],
)
async def test_bad_request_is_invalid_argument_naming_the_field(profile, request_fields, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await report(profile, **request_fields)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value)


async def test_data_stewards_and_auditors_read_the_report_and_others_do_not(profile) -> None:
    await report(profile, metadata=AUDITOR, fields=["email"])
    await report(profile, metadata=ADMIN, fields=["email"])
    for metadata in (RM, bearer(Role.MARKETER)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await report(profile, metadata=metadata)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
