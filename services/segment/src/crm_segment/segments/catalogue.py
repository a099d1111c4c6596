"""The one bridge between the feature catalogue (`rules.FEATURES`, what ListFeatures shows) and
the two things that evaluate rules: the CEL types the checker types against, and the SQL
expression over the read model's `customer_feature` row (alias `cf`) each feature reads.

Every expression here is fixed text written by us; rule text only ever reaches SQL as bound
parameters (crm_segment.cel.to_sql). Each expression has the column type `to_sql` expects for
its CEL type (bigint, double precision, text, boolean, timestamptz, text[]).

Features whose upstream feed is not followed yet (login times, NPS) read a typed NULL: they are
in the contract's catalogue, but every customer's value is missing until their feed lands, so a
rule that needs them selects nobody rather than failing. Segment's own classifications and
lifetime value are columns of the same row, NULL until first computed. Feedback's complaints and
risk's churn scores and campaign's dispatches and responses are rows of their own tables
(`features.peer_features`), read by one primary-key or index lookup per customer.
"""

from __future__ import annotations

from collections.abc import Mapping

from crm_segment.cel import CelType
from crm_segment.segments.model import Feature, FeatureType

# The evaluation time, a variable of every rule besides the features.
NOW = "now"

_CEL_TYPES = {FeatureType.BOOL: CelType.BOOL, FeatureType.INT: CelType.INT, FeatureType.DOUBLE: CelType.DOUBLE,
              FeatureType.STRING: CelType.STRING, FeatureType.STRING_LIST: CelType.LIST_STRING,
              FeatureType.TIMESTAMP: CelType.TIMESTAMP, FeatureType.DURATION: CelType.DURATION}
_NULL_OF = {CelType.BOOL: "NULL::boolean", CelType.INT: "NULL::bigint", CelType.DOUBLE: "NULL::double precision",
            CelType.STRING: "NULL::text", CelType.LIST_STRING: "NULL::text[]",
            CelType.TIMESTAMP: "NULL::timestamptz", CelType.DURATION: "NULL::interval"}


def _enum_names(column: str, names: Mapping[int, str]) -> str:
    """Profile's enum number -> the catalogue's value name; 0 (unspecified) is missing."""
    cases = " ".join(f"WHEN {number} THEN '{name}'" for number, name in sorted(names.items()))
    return f"(CASE {column} {cases} END)"


def _midnight_utc(column: str) -> str:
    return f"({column}::timestamp AT TIME ZONE 'UTC')"


_TODAY_UTC = "(now() AT TIME ZONE 'UTC')::date"
_COMPLAINTS = "(SELECT count(*) FROM feature_complaint fc WHERE fc.customer_id = cf.customer_id AND {})"
_CHURN = "(SELECT cs.{} FROM feature_churn_score cs WHERE cs.customer_id = cf.customer_id)"
_TOUCHES = "FROM feature_campaign_touch ct WHERE ct.customer_id = cf.customer_id"

# Feature -> its expression over `customer_feature cf`. Integers are widened to bigint so that
# rule arithmetic overflows where CEL's int64 does, not at a smallint's bounds.
_COLUMNS: dict[str, str] = {
    "active_channel_count_90d": "cf.active_channel_count_90d::bigint",
    "age": "cf.age_years::bigint",
    "aum": "cf.aum::double precision",
    "aum_change_90d": "cf.aum_change_90d::double precision",
    "average_aum_90d": "cf.average_aum_90d::double precision",
    "birth_year": "cf.birth_year::bigint",
    "branch_id": "cf.branch_id",
    "closed_time": _midnight_utc("cf.closed_on"),
    # The latest completed clustering run: found once per statement (an InitPlan), then one
    # primary-key lookup per customer.
    "cluster_id": ("(SELECT ca.cluster_id::bigint FROM cluster_assignment ca WHERE ca.customer_id = cf.customer_id "
                   "AND ca.run_id = (SELECT r.run_id FROM clustering_run r WHERE r.completed_at IS NOT NULL "
                   "ORDER BY r.completed_at DESC, r.run_id LIMIT 1))"),
    "campaign_contacts_30d": f"(SELECT count(*) {_TOUCHES} AND ct.contacted_at >= now() - interval '30 days')",
    "campaign_responses_90d": f"(SELECT count(*) {_TOUCHES} AND ct.responded_at >= now() - interval '90 days')",
    "churn_probability": _CHURN.format("probability"),
    "churn_risk_band": _enum_names(_CHURN.format("risk_band"), {1: "RISK_BAND_LOW", 2: "RISK_BAND_MEDIUM",
                                                                3: "RISK_BAND_HIGH"}),
    "complaint_count_90d": _COMPLAINTS.format("fc.filed_at >= now() - interval '90 days'"),
    "customer_type": _enum_names("cf.customer_type", {1: "CUSTOMER_TYPE_INDIVIDUAL",
                                                      2: "CUSTOMER_TYPE_ORGANISATION"}),
    "days_since_last_activity": "cf.days_since_last_activity::bigint",
    # Calendar days (UTC) since the latest contact; NULL when never contacted.
    "days_since_last_contact": (f"({_TODAY_UTC} - (SELECT max(ct.contacted_at AT TIME ZONE 'UTC') "
                                f"{_TOUCHES})::date)::bigint"),
    "days_to_next_maturity": f"(cf.next_maturity_on - {_TODAY_UTC})::bigint",
    # A do-not-contact with an end date stops holding after that date.
    "do_not_contact": f"(cf.do_not_contact AND (cf.do_not_contact_until IS NULL "
                      f"OR cf.do_not_contact_until >= {_TODAY_UTC}))",
    "features_as_of": "cf.features_as_of",
    "frequency": "cf.frequency::bigint",
    "gender": _enum_names("cf.gender", {1: "GENDER_FEMALE", 2: "GENDER_MALE", 3: "GENDER_OTHER"}),
    "has_relationship_manager": "(cf.relationship_manager_id <> '')",
    "holdings_closed_90d": "cf.holdings_closed_90d::bigint",
    "holdings_opened_90d": "cf.holdings_opened_90d::bigint",
    "kyc_status": _enum_names("cf.kyc_status", {1: "KYC_STATUS_PENDING", 2: "KYC_STATUS_VERIFIED",
                                                3: "KYC_STATUS_EXPIRED", 4: "KYC_STATUS_REJECTED"}),
    "last_activity_time": "cf.last_activity_at",
    "last_response_positive": (f"(SELECT ct.positive {_TOUCHES} AND ct.responded_at IS NOT NULL "
                               "ORDER BY ct.responded_at DESC, ct.position DESC LIMIT 1)"),
    "login_count_30d": "cf.login_count_30d::bigint",
    "marketing_channels": "cf.marketing_channels",
    "monetary": "cf.monetary::double precision",
    "nationality": "NULLIF(cf.nationality, '')",
    "onboarded_time": _midnight_utc("cf.onboarded_on"),
    "open_complaint_count": _COMPLAINTS.format("fc.open"),
    "payroll_active": "cf.payroll_active",
    "product_categories": "cf.product_categories",
    "product_count": "cf.product_count::bigint",
    "product_type_count": "cf.product_type_count::bigint",
    "recency_days": "cf.recency_days::bigint",
    "relationship_manager_id": "cf.relationship_manager_id",
    "risk_tolerance": _enum_names("cf.risk_tolerance", {
        1: "RISK_TOLERANCE_CONSERVATIVE", 2: "RISK_TOLERANCE_MODERATELY_CONSERVATIVE", 3: "RISK_TOLERANCE_BALANCED",
        4: "RISK_TOLERANCE_MODERATELY_AGGRESSIVE", 5: "RISK_TOLERANCE_AGGRESSIVE"}),
    "tenure_days": "cf.tenure_days::bigint",
    "transaction_count_30d": "cf.transaction_count_30d::bigint",
    "transaction_count_90d": "cf.transaction_count_90d::bigint",
    "visit_count_30d": "cf.visit_count_30d::bigint",
    # Segment's own classification, on the same row (crm_segment.classifications).
    "value_tier": _enum_names("cf.value_tier", {1: "VALUE_TIER_PRIVATE", 2: "VALUE_TIER_VIP",
                                                3: "VALUE_TIER_MASS_AFFLUENT", 4: "VALUE_TIER_MASS",
                                                5: "VALUE_TIER_POTENTIAL"}),
    "activity_layer": _enum_names("cf.activity_layer", {1: "ACTIVITY_LAYER_CORE", 2: "ACTIVITY_LAYER_ACTIVE",
                                                        3: "ACTIVITY_LAYER_DORMANT"}),
    "lifecycle_stage": _enum_names("cf.lifecycle_stage", {
        1: "LIFECYCLE_STAGE_ACQUISITION", 2: "LIFECYCLE_STAGE_GROWTH", 3: "LIFECYCLE_STAGE_MATURE",
        4: "LIFECYCLE_STAGE_DECLINE", 5: "LIFECYCLE_STAGE_CHURNED"}),
    "rfm_recency_score": "cf.rfm_recency_score::bigint",
    "rfm_frequency_score": "cf.rfm_frequency_score::bigint",
    "rfm_monetary_score": "cf.rfm_monetary_score::bigint",
    "rfm_segment": _enum_names("cf.rfm_segment", {
        1: "RFM_SEGMENT_CHAMPIONS", 2: "RFM_SEGMENT_LOYAL", 3: "RFM_SEGMENT_POTENTIAL_LOYALISTS", 4: "RFM_SEGMENT_NEW",
        5: "RFM_SEGMENT_PROMISING", 6: "RFM_SEGMENT_NEED_ATTENTION", 7: "RFM_SEGMENT_ABOUT_TO_SLEEP",
        8: "RFM_SEGMENT_AT_RISK", 9: "RFM_SEGMENT_CANT_LOSE_THEM", 10: "RFM_SEGMENT_HIBERNATING",
        11: "RFM_SEGMENT_LOST"}),
    "expected_lifetime_value": "cf.expected_lifetime_value::double precision",
    NOW: "now()",
}


# Double features stored as NUMERIC: the uncast column, for comparisons with a literal that
# `to_sql` writes as exact NUMERIC bounds (no per-row NUMERIC -> double conversion).
_NUMERIC: dict[str, str] = {name: f"cf.{name}" for name in ("aum", "aum_change_90d", "average_aum_90d", "monetary")}


def cel_type(feature: Feature) -> CelType:
    return _CEL_TYPES[feature.type]


def cel_types(features: tuple[Feature, ...]) -> dict[str, CelType]:
    """Variable -> CEL type for the checker: every feature, and `now`."""
    return {**{f.feature: cel_type(f) for f in features}, NOW: CelType.TIMESTAMP}


def columns(features: tuple[Feature, ...]) -> dict[str, str]:
    """Variable -> SQL expression over `customer_feature cf` for `to_sql`; a typed NULL for a
    feature the read model does not hold yet."""
    return {**{f.feature: _COLUMNS.get(f.feature, _NULL_OF[cel_type(f)]) for f in features}, NOW: _COLUMNS[NOW]}


def numeric_columns(features: tuple[Feature, ...]) -> dict[str, str]:
    """Variable -> uncast NUMERIC column, for the double features the read model stores as NUMERIC."""
    return {f.feature: _NUMERIC[f.feature] for f in features if f.feature in _NUMERIC}


def unfed(features: tuple[Feature, ...]) -> frozenset[str]:
    """Features in the catalogue that the read model does not hold yet."""
    return frozenset(f.feature for f in features if f.feature not in _COLUMNS)
