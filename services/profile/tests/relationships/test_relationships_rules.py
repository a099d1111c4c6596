"""Pure relationship rules, without a database."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from crm_profile.relationships import rules
from crm_profile.relationships.model import (
    COMPANY_OWNER,
    GUARANTEED_PARTY,
    GUARANTOR,
    HOUSEHOLD_MEMBER,
    OWNED_COMPANY,
    SPOUSE,
    Relationship,
)
from crmkit.errors import FailedPrecondition, InvalidArgument

TODAY = date(2026, 6, 1)


def link(**overrides: object) -> Relationship:
    values: dict[str, object] = {"customer_id": "A", "related_customer_id": "B", "type": SPOUSE,
                                 "source_system": "branch-counter"}
    values.update(overrides)
    return Relationship(**values)  # type: ignore[arg-type]


def bad_fields(relationship: Relationship) -> set[str]:
    try:
        rules.validate(relationship, today=TODAY).raise_if_any()
    except InvalidArgument as error:
        return {v.field for v in error.violations}
    return set()


def test_a_valid_link_passes() -> None:
    assert bad_fields(link()) == set()
    assert bad_fields(link(type=COMPANY_OWNER, ownership_percent=Decimal("25.1234"))) == set()
    assert bad_fields(link(type=GUARANTOR, guaranteed_holding="customers/A/holdings/LOAN-1")) == set()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"related_customer_id": "A"}, "relationship.related_customer"),
    ({"type": 0}, "relationship.type"),
    ({"type": 9}, "relationship.type"),
    ({"type": COMPANY_OWNER}, "relationship.ownership_percent"),
    ({"type": OWNED_COMPANY, "ownership_percent": Decimal("0")}, "relationship.ownership_percent"),
    ({"type": OWNED_COMPANY, "ownership_percent": Decimal("100.5")}, "relationship.ownership_percent"),
    ({"type": OWNED_COMPANY, "ownership_percent": Decimal("12.12345")}, "relationship.ownership_percent"),
    ({"ownership_percent": Decimal("10")}, "relationship.ownership_percent"),
    ({"guaranteed_holding": "customers/A/holdings/X"}, "relationship.guaranteed_holding"),
    ({"type": GUARANTOR, "guaranteed_holding": "customers/B/holdings/X"}, "relationship.guaranteed_holding"),
    ({"start_date": date(2030, 1, 1)}, "relationship.start_date"),
    ({"source_system": ""}, "relationship.source_system"),
    ({"source_system": "Branch Counter"}, "relationship.source_system"),
])
def test_bad_links_name_the_field(overrides: dict[str, object], field: str) -> None:
    assert field in bad_fields(link(**overrides))


def test_the_mirror_swaps_the_customers_and_the_type() -> None:
    made, mirror = rules.with_mirror(link(type=GUARANTOR, guaranteed_holding="customers/A/holdings/L"), actor="rm")
    assert (mirror.customer_id, mirror.related_customer_id, mirror.type) == ("B", "A", GUARANTEED_PARTY)
    assert made.mirror_id == mirror.relationship_id and mirror.mirror_id == made.relationship_id
    assert mirror.guaranteed_holding == "" and made.created_by == "rm"


@pytest.mark.parametrize(("kind", "parent", "related", "ok"), [
    (SPOUSE, 1, 1, True), (SPOUSE, 1, 2, False), (HOUSEHOLD_MEMBER, 2, 1, False),
    (COMPANY_OWNER, 2, 1, True), (COMPANY_OWNER, 1, 1, False), (OWNED_COMPANY, 1, 2, True),
    (OWNED_COMPANY, 1, 1, False), (GUARANTOR, 2, 1, True),
])
def test_types_must_suit_the_customers(kind: int, parent: int, related: int, ok: bool) -> None:
    if ok:
        rules.check_types(kind, parent_type=parent, related_type=related)
    else:
        with pytest.raises(FailedPrecondition) as error:
            rules.check_types(kind, parent_type=parent, related_type=related)
        assert error.value.reason == "RELATIONSHIP_TYPE_MISMATCH"


def test_a_merge_moves_links_except_those_that_would_clash() -> None:
    def rel(customer: str, related: str, kind: int) -> Relationship:
        return Relationship(customer, related, kind, relationship_id=uuid.uuid4(), mirror_id=uuid.uuid4())

    survivor = [rel("S", "X", HOUSEHOLD_MEMBER), rel("S", "W", SPOUSE)]
    source = [rel("M", "X", HOUSEHOLD_MEMBER), rel("M", "S", HOUSEHOLD_MEMBER), rel("M", "V", SPOUSE),
              rel("M", "Y", GUARANTOR)]
    plan = rules.plan_merge(survivor, source, survivor_id="S")
    assert [r.related_customer_id for r in plan.move] == ["Y"]
    assert [r.related_customer_id for r in plan.park] == ["X", "S", "V"]
