"""Pure decisions about segments: the feature catalogue, what a valid segment and rule are.

No I/O here. Rules are CEL, type-checked by `crm_segment.cel` against the catalogue's types and
compiled to SQL over the read model's columns (both from `catalogue`, the one bridge), so what
create, update, ValidateSegmentRule, preview and materialisation accept is one decision.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import celpy
from lark import Token

from crm_segment import cel
from crm_segment.cel.model import Literal
from crm_segment.cel.to_sql import SqlCondition
from crm_segment.segments import catalogue
from crm_segment.segments.model import (
    EvaluationMode,
    Feature,
    FeatureType,
    RuleAnalysis,
    RuleIssue,
    Segment,
    Severity,
)
from crmkit.resources import ResourceName
from crmkit.validation import Violations

SEGMENT_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
SEGMENT_NAME = ResourceName("segments/{segment_id}", id_pattern=SEGMENT_ID.pattern)
MAX_DISPLAY_NAME = 100
MAX_DESCRIPTION = 1000
MAX_RULE = 10_000
MIN_REFRESH = timedelta(hours=1)
MAX_REFRESH = timedelta(days=31)
MAX_CONTAINS_FILTER = 100
MAX_WATCHED_SEGMENTS = 100

# Fields an update may name; every other field is immutable or output only.
UPDATABLE_PATHS = frozenset({"display_name", "description", "rule", "evaluation_mode", "refresh_interval"})
# Changing these changes who is a member, so they bump `rule_version`.
RULE_PATHS = frozenset({"rule", "evaluation_mode"})

# Money features are in the bank's reporting currency.
_MONEY = "CNY"
_PROFILE, _SEGMENT, _FEEDBACK, _RISK, _CAMPAIGN = "profile", "segment", "feedback", "risk", "campaign"
_PRODUCT_CATEGORIES = ("BOND", "CREDIT_CARD", "CURRENT_ACCOUNT", "FUND", "INSURANCE", "LOAN", "MORTGAGE",
                       "PAYROLL", "PRECIOUS_METAL", "SAVINGS", "TERM_DEPOSIT", "WEALTH")


def _f(feature: str, type_: FeatureType, source: str, real_time: bool, description: str, *, unit: str = "",
       allowed: tuple[str, ...] = (), nullable: bool = False) -> Feature:
    return Feature(feature=feature, type=type_, description=description, source=source, real_time=real_time,
                   unit=unit, allowed_values=allowed, nullable=nullable)


# The customer read model's features (a constant until the read model has its own catalogue
# table): profile's record, holdings, consents and derived features (crm_segment.features),
# segment's own classifications, feedback and risk signals. Real-time features change within
# seconds of their upstream event.
FEATURES: tuple[Feature, ...] = tuple(sorted((
    _f("active_channel_count_90d", FeatureType.INT, f"{_PROFILE}.features.activity", True,
       "Distinct channels with any event in the last 90 days.", unit="count"),
    _f("activity_layer", FeatureType.STRING, f"{_SEGMENT}.classification.activity_layer", False,
       "Activity layer from the latest classification; unset until first classified.",
       allowed=("ACTIVITY_LAYER_ACTIVE", "ACTIVITY_LAYER_CORE", "ACTIVITY_LAYER_DORMANT"), nullable=True),
    _f("age", FeatureType.INT, f"{_PROFILE}.features.lifecycle.age_years", True,
       "Age in whole years; unset for organisations and customers without a birth date.",
       unit="years", nullable=True),
    _f("aum", FeatureType.DOUBLE, f"{_PROFILE}.features.aum", True,
       "Assets under management now: open deposit and investment holdings.", unit=_MONEY),
    _f("aum_change_90d", FeatureType.DOUBLE, f"{_PROFILE}.features.lifecycle.aum_change_90d", True,
       "AUM now minus AUM 90 days ago; negative when assets left.", unit=_MONEY),
    _f("average_aum_90d", FeatureType.DOUBLE, f"{_PROFILE}.features.average_aum_90d", True,
       "Daily average AUM over the last 90 days.", unit=_MONEY),
    _f("branch_id", FeatureType.STRING, f"{_PROFILE}.customer.branch_id", True,
       "The customer's home branch."),
    _f("birth_year", FeatureType.INT, f"{_PROFILE}.customer.birth_date", True,
       "Year of birth (of incorporation for organisations); unset when not given.", nullable=True),
    _f("campaign_contacts_30d", FeatureType.INT, f"{_CAMPAIGN}.contacts.count_30d", True,
       "Contacts in the last 30 days: dispatches the channel provider accepted (sent or delivered) and "
       "offers shown on inbound channels; for frequency caps and contact fatigue.", unit="count"),
    _f("campaign_responses_90d", FeatureType.INT, f"{_CAMPAIGN}.responses.count_90d", True,
       "Responses to offers in the last 90 days (opened, clicked, interested, accepted, declined, opted "
       "out; an offer merely shown is a contact, not a response).", unit="count"),
    _f("churn_probability", FeatureType.DOUBLE, f"{_RISK}.churn.score", False,
       "Latest churn model probability, 0 to 1; unset until the customer is first scored.",
       unit="score", nullable=True),
    _f("churn_risk_band", FeatureType.STRING, f"{_RISK}.churn.band", False,
       "Band of the latest churn score; unset until the customer is first scored.",
       allowed=("RISK_BAND_HIGH", "RISK_BAND_LOW", "RISK_BAND_MEDIUM"), nullable=True),
    _f("closed_time", FeatureType.TIMESTAMP, f"{_PROFILE}.customer.closed_on", True,
       "When the relationship ended (midnight UTC of the date); unset while it lasts.", nullable=True),
    _f("cluster_id", FeatureType.INT, f"{_SEGMENT}.clustering.latest", False,
       "The customer's cluster (1 = largest) in the latest completed clustering run; unset when the "
       "run left the customer out or no run has completed.", nullable=True),
    _f("complaint_count_90d", FeatureType.INT, f"{_FEEDBACK}.complaints.count_90d", True,
       "Complaints filed in the last 90 days.", unit="count"),
    _f("customer_type", FeatureType.STRING, f"{_PROFILE}.customer.customer_type", True,
       "Individual or organisation.", allowed=("CUSTOMER_TYPE_INDIVIDUAL", "CUSTOMER_TYPE_ORGANISATION")),
    _f("days_since_last_activity", FeatureType.INT, f"{_PROFILE}.features.activity", True,
       "Days since the latest event on any channel; unset when there was none.", unit="days", nullable=True),
    _f("days_since_last_contact", FeatureType.INT, f"{_CAMPAIGN}.contacts.latest", True,
       "Calendar days (UTC) since the latest campaign contact; unset when never contacted.",
       unit="days", nullable=True),
    _f("days_to_next_maturity", FeatureType.INT, f"{_PROFILE}.holdings.maturity_date", True,
       "Days until the earliest maturity among open holdings; unset when none is due.",
       unit="days", nullable=True),
    _f("do_not_contact", FeatureType.BOOL, f"{_PROFILE}.contact_preferences.do_not_contact", True,
       "The customer must not be contacted for marketing or surveys, whatever the consents say."),
    _f("expected_lifetime_value", FeatureType.DOUBLE, f"{_SEGMENT}.ltv.expected_value", False,
       "Expected lifetime value over the next 3 years under the latest fitted model; unset until predicted.",
       unit=_MONEY, nullable=True),
    _f("features_as_of", FeatureType.TIMESTAMP, f"{_SEGMENT}.read_model.features_as_of", True,
       "When profile wrote the newest change the read model applied for this customer."),
    _f("frequency", FeatureType.INT, f"{_PROFILE}.features.rfm.frequency", True,
       "Transactions in the RFM window.", unit="count"),
    _f("gender", FeatureType.STRING, f"{_PROFILE}.customer.gender", True,
       "Gender as recorded; unset when not given.",
       allowed=("GENDER_FEMALE", "GENDER_MALE", "GENDER_OTHER"), nullable=True),
    _f("has_relationship_manager", FeatureType.BOOL, f"{_PROFILE}.customer.relationship_manager_id", True,
       "The customer has a relationship manager."),
    _f("holdings_closed_90d", FeatureType.INT, f"{_PROFILE}.features.lifecycle", True,
       "Holdings closed in the last 90 days.", unit="count"),
    _f("holdings_opened_90d", FeatureType.INT, f"{_PROFILE}.features.lifecycle", True,
       "Holdings opened in the last 90 days.", unit="count"),
    _f("kyc_status", FeatureType.STRING, f"{_PROFILE}.customer.kyc_status", True,
       "Know-your-customer status.",
       allowed=("KYC_STATUS_EXPIRED", "KYC_STATUS_PENDING", "KYC_STATUS_REJECTED", "KYC_STATUS_VERIFIED")),
    _f("last_activity_time", FeatureType.TIMESTAMP, f"{_PROFILE}.features.last_activity_time", True,
       "Time of the latest event on any channel; unset when there is none.", nullable=True),
    _f("last_login_time", FeatureType.TIMESTAMP, f"{_PROFILE}.events.login", True,
       "Time of the latest successful login; unset when there is none.", nullable=True),
    _f("last_response_positive", FeatureType.BOOL, f"{_CAMPAIGN}.responses.latest", True,
       "The latest response to an offer showed interest (opened, clicked, interested or accepted); false "
       "when it was declined or an opt-out; unset when the customer never responded.", nullable=True),
    _f("latest_nps_score", FeatureType.INT, f"{_FEEDBACK}.nps.latest", True,
       "Latest NPS answer, 0 to 10; unset when the customer never answered.", unit="score", nullable=True),
    _f("lifecycle_stage", FeatureType.STRING, f"{_SEGMENT}.classification.lifecycle_stage", False,
       "Lifecycle stage from the latest classification; unset until first classified.",
       allowed=("LIFECYCLE_STAGE_ACQUISITION", "LIFECYCLE_STAGE_CHURNED", "LIFECYCLE_STAGE_DECLINE",
                "LIFECYCLE_STAGE_GROWTH", "LIFECYCLE_STAGE_MATURE"), nullable=True),
    _f("login_count_30d", FeatureType.INT, f"{_PROFILE}.features.activity", True,
       "Successful logins in the last 30 days.", unit="count"),
    _f("marketing_channels", FeatureType.STRING_LIST, f"{_PROFILE}.consents.marketing", True,
       "Channels whose latest marketing consent is an opt-in in force.",
       allowed=("EMAIL", "MOBILE_APP", "PHONE_CALL", "POST", "SMS", "WECHAT")),
    _f("monetary", FeatureType.DOUBLE, f"{_PROFILE}.features.rfm.monetary", True,
       "Sum of transaction amounts in the RFM window, both directions.", unit=_MONEY),
    _f("nationality", FeatureType.STRING, f"{_PROFILE}.customer.nationality", True,
       "ISO 3166-1 alpha-2 nationality; unset when not given.", nullable=True),
    _f("onboarded_time", FeatureType.TIMESTAMP, f"{_PROFILE}.customer.onboarded_on", True,
       "When the customer was onboarded (midnight UTC of the date)."),
    _f("open_complaint_count", FeatureType.INT, f"{_FEEDBACK}.complaints.open", True,
       "Complaints not yet resolved.", unit="count"),
    _f("payroll_active", FeatureType.BOOL, f"{_PROFILE}.features.lifecycle.payroll_active", True,
       "A payroll credit arrived in the last 60 days."),
    _f("product_categories", FeatureType.STRING_LIST, f"{_PROFILE}.holdings", True,
       "Categories of open holdings (PAYROLL when payroll is active).", allowed=_PRODUCT_CATEGORIES),
    _f("product_count", FeatureType.INT, f"{_PROFILE}.features.product_count", True,
       "Open holdings.", unit="count"),
    _f("product_type_count", FeatureType.INT, f"{_PROFILE}.features.product_type_count", True,
       "Distinct product types among open holdings.", unit="count"),
    _f("recency_days", FeatureType.INT, f"{_PROFILE}.features.rfm.recency_days", True,
       "Days since the latest customer-initiated transaction; unset when there is none.",
       unit="days", nullable=True),
    _f("rfm_frequency_score", FeatureType.INT, f"{_SEGMENT}.classification.rfm", False,
       "RFM frequency score, 1 to 5; unset until first scored.", unit="score", nullable=True),
    _f("rfm_monetary_score", FeatureType.INT, f"{_SEGMENT}.classification.rfm", False,
       "RFM monetary score, 1 to 5; unset until first scored.", unit="score", nullable=True),
    _f("rfm_recency_score", FeatureType.INT, f"{_SEGMENT}.classification.rfm", False,
       "RFM recency score, 1 to 5; unset until first scored.", unit="score", nullable=True),
    _f("rfm_segment", FeatureType.STRING, f"{_SEGMENT}.classification.rfm", False,
       "Named RFM segment of the RFM scores; unset until first scored.",
       allowed=("RFM_SEGMENT_ABOUT_TO_SLEEP", "RFM_SEGMENT_AT_RISK", "RFM_SEGMENT_CANT_LOSE_THEM",
                "RFM_SEGMENT_CHAMPIONS", "RFM_SEGMENT_HIBERNATING", "RFM_SEGMENT_LOST", "RFM_SEGMENT_LOYAL",
                "RFM_SEGMENT_NEED_ATTENTION", "RFM_SEGMENT_NEW", "RFM_SEGMENT_POTENTIAL_LOYALISTS",
                "RFM_SEGMENT_PROMISING"), nullable=True),
    _f("relationship_manager_id", FeatureType.STRING, f"{_PROFILE}.customer.relationship_manager_id", True,
       "The customer's relationship manager; empty when none."),
    _f("risk_tolerance", FeatureType.STRING, f"{_PROFILE}.customer.risk_tolerance", True,
       "Assessed risk tolerance; unset when not assessed.",
       allowed=("RISK_TOLERANCE_AGGRESSIVE", "RISK_TOLERANCE_BALANCED", "RISK_TOLERANCE_CONSERVATIVE",
                "RISK_TOLERANCE_MODERATELY_AGGRESSIVE", "RISK_TOLERANCE_MODERATELY_CONSERVATIVE"), nullable=True),
    _f("tenure_days", FeatureType.INT, f"{_PROFILE}.features.tenure_days", True,
       "Days since the customer was onboarded.", unit="days"),
    _f("transaction_count_30d", FeatureType.INT, f"{_PROFILE}.features.activity", True,
       "Customer-initiated transactions in the last 30 days.", unit="count"),
    _f("transaction_count_90d", FeatureType.INT, f"{_PROFILE}.features.activity", True,
       "Customer-initiated transactions in the last 90 days.", unit="count"),
    _f("value_tier", FeatureType.STRING, f"{_SEGMENT}.classification.value_tier", False,
       "Value tier from the latest classification; unset until first classified.",
       allowed=("VALUE_TIER_MASS", "VALUE_TIER_MASS_AFFLUENT", "VALUE_TIER_POTENTIAL", "VALUE_TIER_PRIVATE",
                "VALUE_TIER_VIP"), nullable=True),
    _f("visit_count_30d", FeatureType.INT, f"{_PROFILE}.features.activity", True,
       "Channel visits in the last 30 days.", unit="count"),
), key=lambda f: f.feature))

CATALOGUE: dict[str, Feature] = {f.feature: f for f in FEATURES}

# Variables every rule has besides the features.
BUILTIN_VARIABLES = frozenset({catalogue.NOW})
# What the CEL checker types rules against, and the read-model column each variable reads.
CEL_CATALOGUE = catalogue.cel_types(FEATURES)
SQL_COLUMNS = catalogue.columns(FEATURES)
SQL_NUMERIC = catalogue.numeric_columns(FEATURES)

_UNKNOWN = re.compile(r'unknown feature "(?P<name>[^"]*)"')


def feature_page(*, after: str | None, limit: int, real_time_only: bool) -> list[Feature]:
    """Catalogue entries in `feature` order after `after`, at most `limit`."""
    chosen = (f for f in FEATURES if (after is None or f.feature > after) and (f.real_time or not real_time_only))
    return [f for _, f in zip(range(limit), chosen, strict=False)]


# ---------------------------------------------------------------------------------------------
# Segments


def validate(segment: Segment, *, prefix: str = "segment.", violations: Violations | None = None,
             analysis: RuleAnalysis | None = None) -> Violations:
    """Record every rule the segment breaks, each under the field path the caller used."""
    v = violations or Violations()
    if v.required(segment.segment_id, f"{prefix}segment_id"):
        v.pattern(segment.segment_id, f"{prefix}segment_id", SEGMENT_ID,
                  "must be 1 to 63 characters from a-z 0-9 -, start with a letter and not end with -")
    if v.required(segment.display_name, f"{prefix}display_name"):
        v.max_length(segment.display_name, f"{prefix}display_name", MAX_DISPLAY_NAME)
        v.text(segment.display_name, f"{prefix}display_name")
    v.max_length(segment.description, f"{prefix}description", MAX_DESCRIPTION)
    v.text(segment.description, f"{prefix}description", multiline=True)
    v.check(segment.evaluation_mode in (EvaluationMode.BATCH, EvaluationMode.REAL_TIME),
            f"{prefix}evaluation_mode", "is not a known SegmentEvaluationMode")
    if segment.refresh_interval is not None:
        v.check(MIN_REFRESH <= segment.refresh_interval <= MAX_REFRESH, f"{prefix}refresh_interval",
                "must be unset or zero (on demand only), or from 1 hour to 31 days")
    if _check_rule_length(segment.rule, f"{prefix}rule", v):
        found = analysis or analyse(segment.rule, mode=segment.evaluation_mode)
        for issue in found.errors:
            v.add(f"{prefix}rule", issue.describe())
    return v


def rule_length_ok(rule: str) -> bool:
    """Whether a rule is worth parsing at all (validation names the field when it is not)."""
    return bool(rule.strip()) and len(rule) <= MAX_RULE


def load_parser() -> None:
    """Build cel-python's parser tables now (about half a second) rather than in the first request."""
    celpy.CELParser()


def _check_rule_length(rule: str, field: str, v: Violations) -> bool:
    return v.required(rule.strip(), field) and v.max_length(rule, field, MAX_RULE)


def check_rule_text(rule: str, field: str = "rule") -> None:
    """INVALID_ARGUMENT when a rule to analyse is empty or too long (its content is not judged)."""
    v = Violations()
    _check_rule_length(rule, field, v)
    v.raise_if_any()


def normalise(segment: Segment) -> Segment:
    mode = EvaluationMode.BATCH if segment.evaluation_mode == EvaluationMode.UNSPECIFIED else segment.evaluation_mode
    refresh = segment.refresh_interval if segment.refresh_interval else None
    return dataclasses.replace(segment, display_name=" ".join(segment.display_name.split()),
                               description=segment.description.strip(), evaluation_mode=mode,
                               refresh_interval=refresh)


def apply(current: Segment, changes: Segment, paths: Iterable[str]) -> Segment:
    """The segment with the named fields taken from `changes`; bumps the rule version when the rule
    or its evaluation mode actually changed."""
    merged = dataclasses.replace(current, **{p: getattr(changes, p) for p in paths})
    merged = normalise(merged)
    if merged.rule != current.rule or merged.evaluation_mode != current.evaluation_mode:
        merged = dataclasses.replace(merged, rule_version=current.rule_version + 1)
    return merged


def check_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, UPDATABLE_PATHS)
    v.raise_if_any()


def read_evaluation_mode(number: int, field: str) -> EvaluationMode:
    """The mode a request names; INVALID_ARGUMENT naming the number when it is none."""
    v = Violations()
    v.enum(number, field, frozenset(EvaluationMode), "SegmentEvaluationMode")
    v.raise_if_any()
    return EvaluationMode(number)


def validate_list_filter(*, display_name_contains: str, evaluation_mode: int, feature: str) -> None:
    v = Violations()
    v.max_length(display_name_contains, "display_name_contains", MAX_CONTAINS_FILTER)
    v.text(display_name_contains, "display_name_contains")
    v.enum(evaluation_mode, "evaluation_mode", frozenset(EvaluationMode), "SegmentEvaluationMode")
    if feature:
        v.check(feature in CATALOGUE, "feature", _unknown_feature_message(feature))
    v.raise_if_any()


def validate_watched_segments(segments: Sequence[str]) -> tuple[str, ...]:
    v = Violations()
    v.check(len(segments) <= MAX_WATCHED_SEGMENTS, "segments", f"must name at most {MAX_WATCHED_SEGMENTS} segments")
    for index, name in enumerate(segments):
        SEGMENT_NAME.check(name, f"segments[{index}]", v)
    v.raise_if_any()
    return tuple(segments)


# ---------------------------------------------------------------------------------------------
# Rule analysis


@dataclass(frozen=True)
class CompiledRule:
    """A rule's analysis and, when it has no error, its SQL condition over `customer_feature cf`."""

    analysis: RuleAnalysis
    condition: SqlCondition | None


def compile_rule(rule: str, *, mode: EvaluationMode = EvaluationMode.BATCH) -> CompiledRule:
    """Type-check a rule against the catalogue (crm_segment.cel) and compile it to SQL; the
    first error found, with its position, or warnings about a valid rule."""
    try:
        checked = cel.check(rule, CEL_CATALOGUE)
        condition = cel.to_sql(checked, SQL_COLUMNS, SQL_NUMERIC)
    except cel.InvalidRule as error:
        issue = _issue(error.error)
        return CompiledRule(RuleAnalysis(issues=(issue,), referenced_features=(), real_time_capable=False), None)
    referenced = tuple(sorted(checked.variables - BUILTIN_VARIABLES))
    issues: list[RuleIssue] = []
    batch_only = {name for name in referenced if not CATALOGUE[name].real_time}
    if mode is EvaluationMode.REAL_TIME and batch_only:
        issues += [RuleIssue(Severity.ERROR, "NOT_REAL_TIME_FEATURE",
                             f'feature "{name}" is recomputed in batch, so a real-time segment cannot read it',
                             line, column)
                   for name, line, column in _first_uses(rule, batch_only)]
    if isinstance(checked.root, Literal) and checked.root.value is True:
        issues.append(RuleIssue(Severity.WARNING, "ALWAYS_TRUE", "the rule selects every customer"))
    ordered = tuple(sorted(issues, key=lambda i: (i.severity, i.line, i.column, i.reason)))
    analysis = RuleAnalysis(issues=ordered, referenced_features=referenced, real_time_capable=not batch_only)
    return CompiledRule(analysis, condition if analysis.valid else None)


def analyse(rule: str, *, mode: EvaluationMode = EvaluationMode.BATCH) -> RuleAnalysis:
    """Every issue of a rule: the checker's first error, real-time fitness, warnings."""
    return compile_rule(rule, mode=mode).analysis


def _issue(error: cel.RuleError) -> RuleIssue:
    message = error.message
    unknown = _UNKNOWN.fullmatch(message) if error.reason == "UNKNOWN_FEATURE" else None
    if unknown is not None:
        message = _unknown_feature_message(unknown["name"])
    return RuleIssue(Severity.ERROR, error.reason, message, error.line, error.column)


def _unknown_feature_message(name: str) -> str:
    close = difflib.get_close_matches(name, CATALOGUE, n=1, cutoff=0.6)
    hint = f'; did you mean "{close[0]}"?' if close else "; see ListFeatures for the catalogue"
    return f'unknown feature "{name}"{hint}'


def _first_uses(rule: str, names: frozenset[str] | set[str]) -> list[tuple[str, int, int]]:
    """Where each of `names` first appears in a rule that type-checked (so it parses)."""
    seen: dict[str, tuple[int, int]] = {}
    for subtree in celpy.CELParser().parse(rule).iter_subtrees_topdown():
        if subtree.data != "ident":
            continue
        token = subtree.children[0]
        if isinstance(token, Token) and token.value in names:
            position = (token.line or 0, token.column or 0)
            seen[token.value] = min(seen.get(token.value, position), position)
    return sorted(((name, *position) for name, position in seen.items()), key=lambda u: (u[1], u[2], u[0]))
