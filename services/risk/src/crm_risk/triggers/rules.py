"""Pure decisions of the alert triggers: which contact details changed, and whether a
contact-detail-changes or complaints-spike rule fires. No I/O here.

Which kinds fire today (see also protos/crm/risk/v1/alert.proto and docs/risk-alert-rules.md):
- ALERT_RULE_KIND_CONTACT_DETAIL_CHANGES: yes, from profile's Customer events.
- ALERT_RULE_KIND_COMPLAINTS_SPIKE: yes, from feedback's complaints, when risk records one it had
  not seen (survey scores are not followed: `count_poor_survey_scores` adds nothing yet).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from crm_risk.alerts.model import AlertRule, ComplaintsSpike, ContactDetailChanges
from crm_risk.alerts.rules import CONTACT_FIELDS, effective_cooldown
from crm_risk.triggers.model import ComplaintFiring, ContactChange, FiledComplaint, Firing


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
