"""Where a row's values land on the customer, and when an updated customer counts as unchanged."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from crm_profile.attributes.model import AttributeDefinition, AttributeValue, DataClass, ValueType
from crm_profile.customers.model import ExternalId
from crm_profile.imports import conversion
from crm_profile.imports.conversion import ENUM_VALUES
from crm_profile.imports.model import MODE_LENIENT, ColumnRule, CsvOptions, IdRule, ImportSpec

TODAY = date(2026, 11, 23)
TIER = AttributeDefinition("tier", "Tier", ValueType.STRING, DataClass.NON_PERSONAL, "crm")
COLUMNS = (ColumnRule("name", field="full_name"), ColumnRule("sex", field="gender"),
           ColumnRule("doc", field="id_document.number"), ColumnRule("city", field="address.locality"),
           ColumnRule("district", field="address.sublocality"), ColumnRule("line", field="address.address_lines"),
           ColumnRule("tier", attribute="tier"), ColumnRule("born", field="birth_date"))
HEADER = ["id", "name", "sex", "doc", "city", "district", "line", "tier", "born"]


def mapper() -> conversion.RowMapper:
    spec = ImportSpec(upload="importUploads/00000000-0000-0000-0000-000000000001", csv=CsvOptions(),
                      id_rule=IdRule(column="id"), columns=COLUMNS, mode=MODE_LENIENT, max_bad_rows=0,
                      validate_only=False, source_system="legacy-cif")
    return conversion.RowMapper(spec, HEADER, enum_values=ENUM_VALUES, definitions={"tier": TIER})


def test_each_target_lands_on_its_field_the_address_or_the_attributes() -> None:
    m = mapper()
    row = m.read(2, ["C1", "Li Wei", "MALE", "E123", "Beijing", "Chaoyang", "1 Road", "gold", "1990-01-02"])
    customer = m.new_customer(row, today=TODAY, source_system="legacy-cif")
    assert (customer.full_name, customer.gender, customer.id_number, customer.birth_date) == (
        "Li Wei", 2, "E123", date(1990, 1, 2))
    assert customer.address == {"locality": "Beijing", "sublocality": "Chaoyang", "addressLines": ["1 Road"]}
    assert customer.attributes == {"tier": AttributeValue(ValueType.STRING, "gold")}


def test_a_value_that_failed_to_convert_changes_nothing() -> None:
    m = mapper()
    current = m.new_customer(m.read(2, ["C1", "Li", "MALE", "", "", "", "", "", "1990-01-02"]), today=TODAY,
                             source_system="a")
    row = m.read(3, ["C1", "", "ROBOT", "", "", "", "", "", "1990-02-30"])
    assert [p.field for p in row.problems] == ["gender", "birth_date"]
    assert conversion.same_customer(m.updated_customer(row, current), current)


def test_unchanged_means_every_value_but_the_bookkeeping() -> None:
    m = mapper()
    current = m.new_customer(m.read(2, ["C1", "Li", "", "", "Beijing", "", "", "gold", ""]), today=TODAY,
                             source_system="a")
    same = dataclasses.replace(current, version=7, created_at=datetime(2020, 1, 1, tzinfo=UTC),
                               updated_at=datetime(2021, 1, 1, tzinfo=UTC))
    assert conversion.same_customer(same, current)
    for changes in ({"address": {"locality": "Shanghai"}}, {"attributes": {}},
                    {"external_ids": (ExternalId("core", "1"),)}, {"state": 2}, {"source_system": "b"}):
        assert not conversion.same_customer(dataclasses.replace(current, **changes), current), changes


def test_a_cell_that_is_not_of_the_attribute_type_says_what_it_must_be() -> None:
    score = AttributeDefinition("score", "Score", ValueType.INT, DataClass.NON_PERSONAL, "crm")
    spec = ImportSpec(upload="importUploads/00000000-0000-0000-0000-000000000001", csv=CsvOptions(),
                      id_rule=IdRule(column="id"), columns=(ColumnRule("score", attribute="score"),),
                      mode=MODE_LENIENT, max_bad_rows=0, validate_only=False, source_system="legacy-cif")
    m = conversion.RowMapper(spec, ["id", "score"], enum_values=ENUM_VALUES, definitions={"score": score})
    (problem,) = m.read(2, ["C1", "seven"]).problems
    assert problem.description.startswith("attributes.score must be an integer")


def test_a_batch_read_column_by_column_gives_the_rows_read_one_by_one() -> None:
    definitions = {"tier": TIER, "score": AttributeDefinition("score", "Score", ValueType.INT, DataClass.FINANCIAL,
                                                               "crm")}
    columns = (*COLUMNS, ColumnRule("score", attribute="score"), ColumnRule("kind", field="customer_type",
               value_map={"p": "INDIVIDUAL", "x": ""}, default_value="ORGANISATION"),
               ColumnRule("line2", field="address.address_lines"), ColumnRule("sex", field="kyc_status",
               value_map={"MALE": "VERIFIED"}), ColumnRule("born", field="onboarded_on", date_format="%Y-%m-%d"))
    spec = ImportSpec(upload="importUploads/00000000-0000-0000-0000-000000000001", csv=CsvOptions(null_values=("-",)),
                      id_rule=IdRule(column="id", prefix="P-"), columns=columns, mode=MODE_LENIENT, max_bad_rows=0,
                      validate_only=False, source_system="legacy-cif")
    header = [*HEADER, "score", "kind", "line2"]
    m = conversion.RowMapper(spec, header, enum_values=ENUM_VALUES, definitions=definitions)
    text_rows = [
        [" C1 ", " Li  Wei ", "MALE", "E123", "Beijing", "Chaoyang", "1 Road", "gold", "1990-01-02", "700", "p",
         "2 Road"],
        ["C2", "-", "ROBOT", "", " - ", "-", "", "", "1990-02-30", "n/a", "x", ""],
        ["", "Wang", "male", "-", "", "", "", "", "02/01/1990", "", "", "3 Road"],
        ["C4", "Li", "MALE", "E9", "", " Haidian ", "", "", "1990-01-02", "1", "q", ""],
        ["C5", "", "", "", "", "", "", "", "", "", "", ""],
    ]
    lines = [2, 3, 5, 6, 7]
    one_by_one = [m.read(line, cells) for line, cells in zip(lines, text_rows, strict=True)]
    assert m.read_batch(lines, text_rows, text_only=True) == one_by_one
    assert m.read_batch(lines, text_rows) == one_by_one
    native = [[None, "Li", None, None, None, None, None, None, date(1990, 1, 2), None, None, None],
              ["C7", None, "MALE", None, None, "Xuhui", None, None, date(2000, 5, 6), "12", None, "x"]]
    assert m.read_batch([2, 3], native) == [m.read(2, native[0]), m.read(3, native[1])]
    assert {p.reason for row in one_by_one for p in row.problems} == {  # the batch has cells of every outcome
        "UNKNOWN_ENUM_VALUE", "INVALID_DATE", "INVALID_FORMAT"}
    assert one_by_one[0].values["address.address_lines"] == ["1 Road", "2 Road"]
