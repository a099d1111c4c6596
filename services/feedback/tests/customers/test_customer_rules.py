"""Whether a complaint may be filed for a customer, by the read model of profile: pure rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_feedback.customers import rules
from crm_feedback.customers.rules import KnownCustomer, ModelState
from crmkit.errors import FailedPrecondition, NotFound

AS_OF = datetime(2026, 12, 7, 9, tzinfo=UTC)
CURRENT = ModelState(following=True, as_of=AS_OF)
LAGGING = ModelState(following=False, as_of=AS_OF)


def test_a_known_active_customer_is_verified_whatever_the_model_state() -> None:
    active = KnownCustomer("C1", rules.ACTIVE)
    assert rules.verify("C1", active, CURRENT) is True
    assert rules.verify("C1", active, LAGGING) is True


def test_an_unknown_customer_is_refused_only_while_the_model_is_current() -> None:
    with pytest.raises(NotFound) as refused:
        rules.verify("NOSUCH999", None, CURRENT)
    assert refused.value.reason == "CUSTOMER_NOT_FOUND"
    assert refused.value.metadata["customers_as_of"] == AS_OF.isoformat()
    assert rules.verify("NOSUCH999", None, LAGGING) is False, "profile down: accepted unverified"
    assert rules.verify("NOSUCH999", None, ModelState(following=True, as_of=None)) is False, "nothing applied yet"
    assert rules.verify("NOSUCH999", None, None) is False, "not following profile at all"


def test_merged_and_erased_customers_are_refused() -> None:
    with pytest.raises(FailedPrecondition) as merged:
        rules.verify("C2", KnownCustomer("C2", rules.MERGED, merged_into="C1"), LAGGING)
    assert merged.value.reason == "CUSTOMER_MERGED" and merged.value.metadata["survivor"] == "customers/C1"
    for state in (rules.ERASED, rules.DELETED):
        with pytest.raises(NotFound):
            rules.verify("C3", KnownCustomer("C3", state), CURRENT)
