"""Pure decisions of the alert triggers: which contact details changed, and whether a
contact-detail-changes or complaints-spike rule fires. No I/O here.

Which kinds fire today (see also protos/crm/risk/v1/alert.proto and docs/risk-alert-rules.md):
- ALERT_RULE_KIND_CONTACT_DETAIL_CHANGES: yes, from profile's Customer events.
- ALERT_RULE_KIND_COMPLAINTS_SPIKE: yes, from feedback's complaints, when risk records one it had
  not seen (survey scores are not followed: `count_poor_survey_scores` adds nothing yet).
- ALERT_RULE_KIND_ABNORMAL_TRANSACTIONS, ALERT_RULE_KIND_LARGE_OUTFLOWS: yes, from profile's
  `CustomerEvent` transactions in the reporting currency, against per-customer running statistics
  and hourly outflow sums (risk keeps no transactions).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crm_risk.alerts.model import (
    AbnormalTransactions,
    AlertRule,
    ComplaintsSpike,
    ContactDetailChanges,
    LargeOutflows,
    Money,
)
from crm_risk.alerts.rules import CONTACT_FIELDS, effective_cooldown
from crm_risk.triggers.model import (
    AbnormalTransaction,
    Baseline,
    ComplaintFiring,
    ContactChange,
    FiledComplaint,
    Firing,
    Maturing,
    OutflowFiring,
    Transaction,
)

# Transactions of a direction a customer must have had before one can be abnormal against them.
MIN_HISTORY = 10
DEFAULT_Z_SCORE = 3.0
DEBIT = 2  # crm.profile.v1.TransactionDirection.TRANSACTION_DIRECTION_DEBIT
TRANSFER = 1  # crm.profile.v1.TransactionKind.TRANSACTION_KIND_TRANSFER
# Outflows are kept by the hour this long: the longest window a rule may have.
OUTFLOW_RETENTION = timedelta(days=90)


def digest(key: bytes, field: str, value: str) -> str:
    """A keyed digest of one contact detail: equal values compare equal, the value cannot be read
    back (a plain hash of a phone number is reversed by trying them all). Empty stays empty."""
    normalised = " ".join(value.split()).casefold()
    if not normalised:
        return ""
    return hmac.new(key, f"{field}\0{normalised}".encode(), hashlib.sha256).hexdigest()


def changed_fields(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Fields whose digest differs from the one stored; a field never seen before is not a change
    (the first event about a customer sets the baseline)."""
    return [f for f in CONTACT_FIELDS if f in before and f in after and before[f] != after[f]]


def contact_rule_fires(rule: AlertRule, changes: Iterable[ContactChange], *, now: datetime,
                       last_alert_at: datetime | None) -> Firing | None:
    """A contact-detail-changes rule fires when at least `min_changes` changes of its fields (all
    contact fields when it names none) happened within its window up to `now`, and no alert of
    the rule for this customer was raised within its cooldown."""
    parameters = rule.parameters
    if not rule.enabled or not isinstance(parameters, ContactDetailChanges) or rule.window is None:
        return None
    if last_alert_at is not None and now - last_alert_at < effective_cooldown(rule):
        return None
    fields = set(parameters.fields or CONTACT_FIELDS)
    since = now - rule.window
    counted = sorted((c for c in changes if c.field in fields and since < c.changed_at <= now),
                     key=lambda c: (c.changed_at, c.field))
    if len(counted) < max(parameters.min_changes, 1):
        return None
    return Firing(changes=tuple(counted))


def longest_window(rules: Iterable[AlertRule]) -> timedelta:
    return max((r.window for r in rules if r.window is not None), default=timedelta(0))


def summary(rule: AlertRule, firing: Firing) -> str:
    fields = sorted({c.field for c in firing.changes})
    days = rule.window.total_seconds() / 86400 if rule.window else 0
    return f"{len(firing.changes)} contact-detail changes ({', '.join(fields)}) within {days:g} days"


def complaint_rule_fires(rule: AlertRule, complaints: Iterable[FiledComplaint], *, now: datetime,
                         last_alert_at: datetime | None) -> ComplaintFiring | None:
    """A complaints-spike rule fires when the customer filed at least `min_complaints` complaints
    within its window up to `now` (the newest complaint's filing), and no alert of the rule for
    this customer was raised within its cooldown. A complaint deleted in feedback still counts: it
    was filed."""
    parameters = rule.parameters
    if not rule.enabled or not isinstance(parameters, ComplaintsSpike) or rule.window is None:
        return None
    if last_alert_at is not None and now - last_alert_at < effective_cooldown(rule):
        return None
    since = now - rule.window
    counted = sorted((c for c in complaints if since < c.filed_at <= now),
                     key=lambda c: (c.filed_at, c.complaint_id))
    if len(counted) < max(parameters.min_complaints, 1):
        return None
    return ComplaintFiring(complaints=tuple(counted))


def complaint_summary(rule: AlertRule, firing: ComplaintFiring) -> str:
    days = rule.window.total_seconds() / 86400 if rule.window else 0
    return f"{len(firing.complaints)} complaints within {days:g} days"


def in_cooldown(rule: AlertRule, *, now: datetime, last_alert_at: datetime | None) -> bool:
    return last_alert_at is not None and now - last_alert_at < effective_cooldown(rule)


def z_score(baseline: Baseline, amount: Decimal) -> float | None:
    """How many standard deviations `amount` is above the customer's mean; None below
    MIN_HISTORY transactions. With no spread at all, any amount above the mean is infinitely far."""
    if baseline.count < MIN_HISTORY:
        return None
    above = float(amount) - baseline.mean
    if baseline.stddev == 0:
        return math.inf if above > 0 else 0.0
    return above / baseline.stddev


def _reaches(amount: Decimal, currency_code: str, threshold: Money | None) -> bool:
    """Whether `amount` reaches the threshold; never for a threshold in another currency (risk has
    no exchange rates) or none."""
    return threshold is not None and threshold.currency_code == currency_code and amount >= threshold.amount


def abnormal_z(rule: AlertRule, baseline: Baseline, tx: Transaction) -> float | None:
    """The transaction's z-score when the rule finds it abnormal against the customer's baseline of
    its direction (before it): at least `min_amount` and `min_z_score` (0: 3) deviations above."""
    parameters = rule.parameters
    if not rule.enabled or not isinstance(parameters, AbnormalTransactions):
        return None
    if not _reaches(tx.amount, tx.currency_code, parameters.min_amount):
        return None
    z = z_score(baseline, tx.amount)
    if z is None or z < (parameters.min_z_score or DEFAULT_Z_SCORE):
        return None
    return z


def abnormal_rule_fires(rule: AlertRule, abnormal: Iterable[AbnormalTransaction], *, now: datetime,
                        last_alert_at: datetime | None) -> tuple[AbnormalTransaction, ...] | None:
    """The abnormal transactions within the window up to `now` when they number at least
    `min_transactions` (0: 1) and the rule is out of its cooldown."""
    parameters = rule.parameters
    if (not rule.enabled or not isinstance(parameters, AbnormalTransactions) or rule.window is None
            or in_cooldown(rule, now=now, last_alert_at=last_alert_at)):
        return None
    since = now - rule.window
    counted = sorted((a for a in abnormal if since < a.occurred_at <= now), key=lambda a: (a.occurred_at, a.event))
    return tuple(counted) if len(counted) >= max(parameters.min_transactions, 1) else None


def counts_as_outflow(rule: AlertRule, tx: Transaction) -> bool:
    """Money out, in the rule's eyes. Profile's events do not say whose account a transfer went
    to, so a rule that leaves out own-account transfers leaves out every transfer."""
    parameters = rule.parameters
    if tx.direction != DEBIT or not isinstance(parameters, LargeOutflows):
        return False
    return parameters.include_own_account_transfers or tx.kind != TRANSFER


def outflow_rule_fires(rule: AlertRule, *, total: Decimal, currency_code: str, balance: Decimal | None,
                       now: datetime, last_alert_at: datetime | None) -> OutflowFiring | None:
    """A large-outflows rule fires when the money out within its window (`total`) reaches
    `min_amount` and, when `min_balance_share` is set, that share of the balance at the window's
    start, taken as the customer's current total assets plus the outflows (None: unknown, the
    share cannot be judged and the rule does not fire)."""
    parameters = rule.parameters
    if (not rule.enabled or not isinstance(parameters, LargeOutflows) or rule.window is None
            or in_cooldown(rule, now=now, last_alert_at=last_alert_at)
            or not _reaches(total, currency_code, parameters.min_amount)):
        return None
    if not parameters.min_balance_share:
        return OutflowFiring(total=total, share=None)
    if balance is None or balance + total <= 0:
        return None
    share = float(total / (balance + total))
    return OutflowFiring(total=total, share=share) if share >= parameters.min_balance_share else None


def maturity_span(rule: AlertRule, tx: Transaction) -> tuple[date, date] | None:
    """The days a holding must mature on for a rule watching maturities to look at this outflow:
    the outflow's UTC day to `before_maturity` later. None when the rule does not watch them."""
    parameters = rule.parameters
    if not isinstance(parameters, LargeOutflows) or not parameters.before_maturity:
        return None
    day = tx.occurred_at.astimezone(UTC).date()
    return day, (tx.occurred_at + parameters.before_maturity).astimezone(UTC).date()


def maturing_balance(holdings: Iterable[Maturing]) -> Decimal | None:
    """The balance of the maturing holdings; None when one has no reporting-currency balance."""
    total = Decimal(0)
    for h in holdings:
        if h.balance is None:
            return None
        total += h.balance
    return total


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def abnormal_description(found: AbnormalTransaction) -> str:
    direction = "debit" if found.direction == DEBIT else "credit"
    if math.isinf(found.z_score):
        return f"unusually large {direction} (above every earlier amount, which were all equal)"
    return f"unusually large {direction} ({found.z_score:.1f} standard deviations above the customer's mean)"


def abnormal_summary(rule: AlertRule, found: tuple[AbnormalTransaction, ...]) -> str:
    days = rule.window.total_seconds() / 86400 if rule.window else 0
    return f"{len(found)} abnormal transactions within {days:g} days"


def outflow_summary(rule: AlertRule, firing: OutflowFiring, currency_code: str) -> str:
    days = rule.window.total_seconds() / 86400 if rule.window else 0
    share = f" ({firing.share:.0%} of the balance)" if firing.share is not None else ""
    return f"outflows of {firing.total:.2f} {currency_code} within {days:g} days{share}"
