"""Why a customer is on the early-warning list and what to do first: pure, no I/O.

Reasons served today: HIGH_CHURN_RISK (the current score is in the high band), LARGE_OUTFLOW (an
open large-outflow alert) and OPEN_ALERT (any other open alert). The others of the contract
(rising risk, asset decline, dissatisfaction, inactivity) need score history and the feedback
feed, which risk's read model does not hold yet.

The suggested action follows the most serious reason: an open alert is worked first (fraud must
be ruled out before a retention call), then a large outflow gets a call; for a high score alone,
the strongest driver picks it (inactivity -> re-engage; few products or a low balance ->
product review; anything else -> a relationship review).
"""

from __future__ import annotations

from crm_risk.early_warning.model import Candidate, EarlyWarning, Reason, ReasonKind, RetentionAction, WarningFilter
from crm_risk.scoring.model import RiskBand
from crmkit.validation import Violations

SERVED_REASONS = frozenset({ReasonKind.HIGH_CHURN_RISK, ReasonKind.LARGE_OUTFLOW, ReasonKind.OPEN_ALERT})
_ENGAGEMENT = ("active", "login", "activity", "recency", "visit")
_PRODUCTS = ("product", "balance", "aum", "holding")
_DESCRIPTIONS = {
    RetentionAction.WORK_OPEN_ALERT: "Work the open alert first: rule out fraud before a retention call",
    RetentionAction.CALL_ABOUT_OUTFLOW: "Call about the large outflow before the funds leave the bank",
    RetentionAction.RE_ENGAGE: "Invite the customer back: activity review and channel onboarding",
    RetentionAction.PRODUCT_REVIEW: "Review products and pricing with the customer",
    RetentionAction.RELATIONSHIP_REVIEW: "Hold a relationship review to find what drives the risk",
}


def reasons(c: Candidate) -> tuple[Reason, ...]:
    """The reasons that apply, most serious first."""
    found = []
    if c.open_large_outflows:
        found.append(Reason(ReasonKind.LARGE_OUTFLOW, f"{c.open_large_outflows} open large-outflow alert(s)",
                            c.first_alert_time))
    other = c.open_alerts - c.open_large_outflows
    if other:
        found.append(Reason(ReasonKind.OPEN_ALERT, f"{other} other open alert(s)", c.first_alert_time))
    if c.risk_band == RiskBand.HIGH and c.probability is not None:
        found.append(Reason(ReasonKind.HIGH_CHURN_RISK, f"Churn probability {c.probability:.0%} (high band)",
                            c.score_time))
    return tuple(found)


def suggest(c: Candidate) -> RetentionAction:
    if c.open_alerts > c.open_large_outflows:
        return RetentionAction.WORK_OPEN_ALERT
    if c.open_large_outflows:
        return RetentionAction.CALL_ABOUT_OUTFLOW
    top = c.drivers[0].feature.lower() if c.drivers else ""
    if any(word in top for word in _ENGAGEMENT):
        return RetentionAction.RE_ENGAGE
    if any(word in top for word in _PRODUCTS):
        return RetentionAction.PRODUCT_REVIEW
    return RetentionAction.RELATIONSHIP_REVIEW


def warning(c: Candidate) -> EarlyWarning:
    found = reasons(c)
    action = suggest(c)
    times = [r.observe_time for r in found if r.observe_time is not None]
    return EarlyWarning(candidate=c, reasons=found, action=action, action_description=_DESCRIPTIONS[action],
                        first_flag_time=min(times) if times else None)


def validate_filter(where: WarningFilter, v: Violations) -> None:
    v.enum(where.min_risk_band, "min_risk_band", frozenset(RiskBand), "RiskBand")
    for i, kind in enumerate(where.reason_kinds):
        v.enum(kind, f"reason_kinds[{i}]", frozenset(ReasonKind), "EarlyWarningReasonKind",
               required="must not be unspecified")

