"""Attribution of a purchase to the latest contact whose window covers it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_campaign.engagement.model import Contact
from crm_campaign.engagement.rules import attribute

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WEEK = timedelta(days=7)


def contact(campaign: str, offer: str, days: int, *, product: str = "TD-3Y", control: bool = False) -> Contact:
    return Contact(campaign_id=campaign, offer_id=offer, product_code=product, control_group=control,
                   contact_at=T0 + timedelta(days=days), window=WEEK, dispatch_id="" if control else f"d-{campaign}")


def test_the_latest_covering_contact_for_the_product_wins() -> None:
    contacts = [contact("a", "td", 0), contact("b", "td", 3), contact("c", "fund", 4, product="FUND")]
    assert attribute(T0 + timedelta(days=5), contacts, product_code="TD-3Y") == contacts[1]


def test_a_contact_after_the_purchase_or_with_a_lapsed_window_does_not_count() -> None:
    contacts = [contact("a", "td", 0), contact("b", "td", 10)]
    assert attribute(T0 + timedelta(days=8), contacts, product_code="TD-3Y") is None
    assert attribute(T0 + timedelta(days=7), contacts, product_code="TD-3Y") == contacts[0]


def test_a_named_offer_is_attributed_to_that_offer_only() -> None:
    contacts = [contact("a", "td", 0), contact("b", "td", 3)]
    assert attribute(T0 + timedelta(days=5), contacts, offer=("a", "td")) == contacts[0]
    assert attribute(T0 + timedelta(days=5), contacts, offer=("z", "td")) is None


def test_a_control_customer_is_attributed_to_their_assignment() -> None:
    held_out = contact("a", "td", 0, control=True)
    found = attribute(T0 + timedelta(days=1), [held_out], product_code="TD-3Y")
    assert found is not None and found.control_group and found.dispatch_id == ""
