"""Renewal model -> proto."""

from __future__ import annotations

from decimal import Decimal

from google.type import money_pb2

from crm.campaign.v1 import care_pb2
from crm_campaign.api import value_messages as values
from crm_campaign.campaigns.model import Money
from crm_campaign.renewals.model import Renewal, RenewalSummary
from crmkit.validation import from_date, set_date
from crmkit.values import set_timestamps

QUANTUM = Decimal("0.000000001")


def _money(currency: str, amount: Decimal) -> money_pb2.Money:
    return values.money_to_proto(Money(currency, amount.quantize(QUANTUM)))



def renewal_to_proto(renewal: Renewal) -> care_pb2.Renewal:
    message = care_pb2.Renewal(
        name=renewal.name, customer=f"customers/{renewal.customer_id}", account_id=renewal.holding_id,
        product_code=renewal.product_code, maturity_date=from_date(renewal.maturity_date),
        maturing_amount=_money(renewal.currency, renewal.maturing_amount),
        state=int(renewal.state),  # type: ignore[arg-type]
        renewed_product_code=renewal.renewed_product_code,
        relationship_manager_id=renewal.relationship_manager_id)
    if renewal.renewed_amount is not None:
        message.renewed_amount.CopyFrom(_money(renewal.currency, renewal.renewed_amount))
    if renewal.decide_date is not None:
        set_date(message.decide_date, renewal.decide_date)
    set_timestamps(message, last_contact_time=renewal.last_contact_at, create_time=renewal.created_at,
                   update_time=renewal.updated_at)
    return message


def summary_to_proto(summary: RenewalSummary, *, currency: str) -> care_pb2.RenewalSummary:
    return care_pb2.RenewalSummary(
        renewal_count=summary.count,
        state_counts=[care_pb2.RenewalStateCount(state=int(state), count=count)  # type: ignore[arg-type]
                      for state, count in summary.state_counts],
        maturing_amount=_money(currency, summary.maturing_amount),
        renewed_amount=_money(currency, summary.renewed_amount), retention_rate=summary.retention_rate)
