"""Pure decisions about alert rules: what a valid rule and update are, the defaults the contract
gives unset durations. No I/O here."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from crm_risk.alerts.model import (
    PARAMETERS,
    AbnormalTransactions,
    AlertRule,
    ComplaintsSpike,
    ContactDetailChanges,
    Kind,
    LargeOutflows,
    Money,
    Parameters,
    Severity,
)
from crmkit.resources import ResourceName
from crmkit.validation import Violations

ALERT_RULE_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
ALERT_RULE_NAME = ResourceName("alertRules/{alert_rule_id}", id_pattern=ALERT_RULE_ID.pattern)
CURRENCY_CODE = re.compile(r"[A-Z]{3}")
CONTACT_FIELDS = ("mobile_phone", "email", "address")
MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 2000
MAX_EMPLOYEE_ID = 64

WINDOW_RANGE = (timedelta(hours=1), timedelta(days=90))
RESPONSE_SLA_RANGE = (timedelta(hours=1), timedelta(days=7))
COOLDOWN_RANGE = (timedelta(0), timedelta(days=90))
BASELINE_WINDOW_RANGE = (timedelta(days=30), timedelta(days=365))
BEFORE_MATURITY_RANGE = (timedelta(days=1), timedelta(days=90))
DEFAULT_RESPONSE_SLA = timedelta(hours=24)
DEFAULT_BASELINE_WINDOW = timedelta(days=180)
DEFAULT_MIN_Z_SCORE = 3.0

# Fields an update may name; parameters are named by their kind's field (see `check_mask`).
UPDATABLE_PATHS = frozenset({
    "display_name", "description", "severity", "enabled", "window", "response_sla", "cooldown", "default_assignee",
})


def _kind_name(kind: int) -> str:
    return f"ALERT_RULE_KIND_{Kind(kind).name}"


def validate(rule: AlertRule, *, prefix: str = "alert_rule.", violations: Violations | None = None) -> Violations:
    """Record every rule the alert rule breaks, each under the field path the caller used."""
    v = violations if violations is not None else Violations()
    v.pattern(rule.alert_rule_id, prefix + "alert_rule_id", ALERT_RULE_ID,
              "must be 1 to 63 characters from a-z 0-9 -, starting with a letter")
    display_name = rule.display_name.strip()
    if v.required(display_name, prefix + "display_name"):
        v.max_length(display_name, prefix + "display_name", MAX_DISPLAY_NAME)
        v.text(display_name, prefix + "display_name")
    v.max_length(rule.description, prefix + "description", MAX_DESCRIPTION)
    v.text(rule.description, prefix + "description", multiline=True)
    kind_known = v.enum(rule.kind, prefix + "kind", frozenset(Kind), "AlertRuleKind",
                        required="is required: a known AlertRuleKind, e.g. ALERT_RULE_KIND_LARGE_OUTFLOWS")
    v.enum(rule.severity, prefix + "severity", frozenset(Severity), "AlertSeverity",
           required="is required: a known AlertSeverity, e.g. ALERT_SEVERITY_HIGH")
    if v.check(rule.window is not None, prefix + "window", "is required: 1 hour to 90 days"):
        _duration_within(rule.window, WINDOW_RANGE, prefix + "window", "must be 1 hour to 90 days", v)
    if rule.response_sla:  # unset or zero: the 24-hour default
        _duration_within(rule.response_sla, RESPONSE_SLA_RANGE, prefix + "response_sla",
                         "must be 1 hour to 7 days, or unset for 24 hours", v)
    if rule.cooldown is not None:
        _duration_within(rule.cooldown, COOLDOWN_RANGE, prefix + "cooldown", "must be 0 to 90 days", v)
    v.max_length(rule.default_assignee, prefix + "default_assignee", MAX_EMPLOYEE_ID)
    v.text(rule.default_assignee, prefix + "default_assignee")
    if kind_known:
        _validate_parameters(Kind(rule.kind), rule.parameters, prefix, v)
    return v


def _duration_within(value: timedelta | None, bounds: tuple[timedelta, timedelta], field: str, rule: str,
                     v: Violations) -> None:
    v.check(value is not None and bounds[0] <= value <= bounds[1], field, rule)


def _validate_parameters(kind: Kind, parameters: Parameters | None, prefix: str, v: Violations) -> None:
    field, expected = PARAMETERS[kind]
    if parameters is None:
        v.add(prefix + field, f"is required for {_kind_name(kind)}")
        return
    if not isinstance(parameters, expected):
        other = next(f for f, t in PARAMETERS.values() if isinstance(parameters, t))
        v.add(prefix + other, f"does not match kind {_kind_name(kind)}: set {field} instead")
        return
    path = prefix + field + "."
    if isinstance(parameters, ContactDetailChanges):
        v.check(2 <= parameters.min_changes <= 100, path + "min_changes", "must be 2 to 100")
        v.check(set(parameters.fields) <= set(CONTACT_FIELDS), path + "fields",
                f"may name only {', '.join(CONTACT_FIELDS)}")
        v.check(len(set(parameters.fields)) == len(parameters.fields), path + "fields", "must not repeat a field")
    elif isinstance(parameters, AbnormalTransactions):
        z = parameters.min_z_score
        v.check(math.isfinite(z) and (z == 0 or 2 <= z <= 10), path + "min_z_score", "must be 2 to 10, or 0 for 3")
        if parameters.baseline_window:
            _duration_within(parameters.baseline_window, BASELINE_WINDOW_RANGE, path + "baseline_window",
                             "must be 30 to 365 days, or unset for 180 days", v)
        _validate_amount(parameters.min_amount, path + "min_amount", v)
        v.check(0 <= parameters.min_transactions <= 100, path + "min_transactions", "must be 1 to 100, or 0 for 1")
    elif isinstance(parameters, LargeOutflows):
        _validate_amount(parameters.min_amount, path + "min_amount", v)
        share = parameters.min_balance_share
        v.check(math.isfinite(share) and 0 <= share <= 1, path + "min_balance_share", "must be 0 to 1")
        if parameters.before_maturity:
            _duration_within(parameters.before_maturity, BEFORE_MATURITY_RANGE, path + "before_maturity",
                             "must be 1 to 90 days, or unset", v)
    elif isinstance(parameters, ComplaintsSpike):
        v.check(1 <= parameters.min_complaints <= 100, path + "min_complaints", "must be 1 to 100")


def _validate_amount(money: Money | None, field: str, v: Violations) -> None:
    if money is None or (not money.currency_code and not money.units and not money.nanos):
        v.add(field, "is required: a positive amount with its ISO 4217 currency code")
        return
    v.pattern(money.currency_code, field + ".currency_code", CURRENCY_CODE,
              "is required: an ISO 4217 code, e.g. CNY")
    well_formed = abs(money.nanos) < 1_000_000_000 and (money.units * money.nanos >= 0)
    if v.check(well_formed, field, "units and nanos must have the same sign, nanos below 10^9 in size"):
        v.check(money.amount > 0, field, "must be positive")


def check_mask(paths: Sequence[str], kind: int, *, violations: Violations | None = None) -> Violations:
    """Every path must name an updatable field or a parameter of the rule's own kind."""
    v = violations if violations is not None else Violations()
    v.check(bool(paths), "update_mask", "is required: name the fields to update")
    own = PARAMETERS.get(Kind(kind)) if kind in frozenset(Kind) else None
    for path in paths:
        head, _, sub = path.partition(".")
        if path in UPDATABLE_PATHS:
            continue
        if own is not None and head == own[0]:
            sub_fields = {f.name for f in dataclasses.fields(own[1])}
            v.check(not sub or sub in sub_fields, "update_mask", f"'{path}' is not a parameter of {own[0]}")
        elif head in {field for field, _ in PARAMETERS.values()}:
            v.add("update_mask", f"'{path}' is a parameter of another kind; this rule is {_kind_name(kind)}")
        else:
            v.add("update_mask", f"'{path}' cannot be updated; updatable: {', '.join(sorted(UPDATABLE_PATHS))} "
                                 "and the parameters of the rule's kind")
    return v


def apply(current: AlertRule, changes: AlertRule, paths: Sequence[str]) -> AlertRule:
    """`current` with the fields named in a checked mask taken from `changes`."""
    updated = current
    for path in paths:
        _, _, sub = path.partition(".")
        if path in UPDATABLE_PATHS:
            updated = dataclasses.replace(updated, **{path: getattr(changes, path)})
            continue
        _, parameters_type = PARAMETERS[Kind(current.kind)]
        # An unset message in the request reads as its defaults, as proto3 would have it.
        sent = changes.parameters if isinstance(changes.parameters, parameters_type) else parameters_type()
        if not sub:
            updated = dataclasses.replace(updated, parameters=sent)
        else:
            base = updated.parameters if isinstance(updated.parameters, parameters_type) else parameters_type()
            updated = dataclasses.replace(updated, parameters=dataclasses.replace(base, **{sub: getattr(sent, sub)}))
    return updated


def effective_response_sla(rule: AlertRule) -> timedelta:
    return rule.response_sla or DEFAULT_RESPONSE_SLA


def effective_cooldown(rule: AlertRule) -> timedelta:
    """Unset or zero means the rule's window."""
    return rule.cooldown or rule.window or timedelta(0)


def alert_due_time(rule: AlertRule, *, triggered_at: datetime) -> datetime:
    """When an alert the rule raises must be acknowledged by: the 24 h response SLA by default."""
    return triggered_at + effective_response_sla(rule)
