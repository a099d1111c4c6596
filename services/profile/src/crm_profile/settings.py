"""Settings of the profile service (`CRM_PROFILE_*`), on the shared base, with their defaults."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import Field, SecretStr

from crm_profile.privacy.retention.rules import DEFAULT_MINIMUM_DAYS
from crmkit.settings import GrpcServiceSettings

# Defaults of CRM_PROFILE_STALE_MAX_AGE_DAYS: contact details and the suitability assessment are
# re-confirmed yearly, occupation every two years.
STALE_MAX_AGE_DAYS = {"mobile_phone": 365, "email": 365, "address": 365, "risk_tolerance": 365, "occupation": 730}
# Defaults of CRM_PROFILE_QUALITY_EXPECTED_FIELDS.
EXPECTED_FIELDS = ("full_name", "birth_date", "id_document.number", "mobile_phone", "address", "kyc_status",
                   "risk_tolerance")


class ProfileSettings(GrpcServiceSettings):
    database_url: str = Field(validation_alias="CRM_PROFILE_DATABASE_URL")
    port: int = Field(default=50051, validation_alias="CRM_PROFILE_PORT", ge=0, le=65535)
    # AES-256 keys as `key_id:base64,key_id:base64`; the active one seals new values.
    encryption_keys: SecretStr = Field(validation_alias="CRM_PROFILE_ENCRYPTION_KEYS")
    active_key_id: str = Field(validation_alias="CRM_PROFILE_ACTIVE_KEY_ID")
    # Base64 key (32 bytes or more) of the blind indexes; never rotated without a re-index.
    blind_index_key: SecretStr = Field(validation_alias="CRM_PROFILE_BLIND_INDEX_KEY")
    feed_poll_seconds: float = Field(default=0.25, gt=0, le=10, validation_alias="CRM_PROFILE_FEED_POLL_SECONDS")
    feed_retention_days: int = Field(default=30, ge=1, le=3650, validation_alias="CRM_PROFILE_FEED_RETENTION_DAYS")
    # Maximum age in days of core fields before ListStaleFields prompts staff to confirm them, as
    # JSON (`{"mobile_phone": 365}`); fields not listed never go stale (attributes: `max_age`).
    stale_max_age_days: dict[str, int] = Field(default_factory=lambda: dict(STALE_MAX_AGE_DAYS),
                                               validation_alias="CRM_PROFILE_STALE_MAX_AGE_DAYS")
    quality_min_completeness_percent: float = Field(
        default=98.0, ge=0, le=100, validation_alias="CRM_PROFILE_QUALITY_MIN_COMPLETENESS_PERCENT")
    quality_max_error_rate_percent: float = Field(
        default=2.0, ge=0, le=100, validation_alias="CRM_PROFILE_QUALITY_MAX_ERROR_RATE_PERCENT")
    # Core fields every customer is expected to have (held to the completeness threshold), as JSON.
    quality_expected_fields: list[str] = Field(default_factory=lambda: list(EXPECTED_FIELDS),
                                               validation_alias="CRM_PROFILE_QUALITY_EXPECTED_FIELDS")
    # How long a computed data-quality report is reused (it scans every customer), seconds.
    quality_cache_seconds: float = Field(default=300.0, ge=0, le=3600,
                                         validation_alias="CRM_PROFILE_QUALITY_CACHE_SECONDS")
    # Holdings: the bank's reporting currency (AUM is summed in it) and reference rates to it, as
    # JSON: units of the reporting currency per unit of another (`{"USD": "7.10", "HKD": "0.91"}`).
    reporting_currency: str = Field(default="CNY", validation_alias="CRM_PROFILE_REPORTING_CURRENCY")
    fx_rates: dict[str, Decimal] = Field(default_factory=dict, validation_alias="CRM_PROFILE_FX_RATES")
    # The background matcher applies the enabled match rules to changed customers (off: only
    # FindMatches and manual merges; for bulk loads that match afterwards).
    matcher_enabled: bool = Field(default=True, validation_alias="CRM_PROFILE_MATCHER_ENABLED")
    # How often an idle matcher looks for changes no commit of its own process announced (another
    # replica's, a bulk import's), seconds; this process's commits wake it at once.
    matcher_poll_seconds: float = Field(default=2.0, gt=0, le=60, validation_alias="CRM_PROFILE_MATCHER_POLL_SECONDS")
    # Long-running operations: worker processes (spawned) for imports and other batch work, and
    # how often WatchOperation looks for progress.
    operation_workers: int = Field(default=2, ge=1, le=64, validation_alias="CRM_PROFILE_OPERATION_WORKERS")
    operation_poll_seconds: float = Field(default=0.5, gt=0, le=10,
                                          validation_alias="CRM_PROFILE_OPERATION_POLL_SECONDS")
    # Bulk import: the largest file accepted (at most the contract's 10 GiB) and the space all
    # unexpired uploads may take together in the database.
    import_max_upload_bytes: int = Field(default=10 * 1024**3, ge=1, le=10 * 1024**3,
                                         validation_alias="CRM_PROFILE_IMPORT_MAX_UPLOAD_BYTES")
    import_upload_area_bytes: int = Field(default=50 * 1024**3, ge=1,
                                          validation_alias="CRM_PROFILE_IMPORT_UPLOAD_AREA_BYTES")
    # Retention: the legal floor of each data class's period, as JSON days by class
    # (`{"transaction": 1825}`; see privacy/retention/rules.py), and how often the purge runs by
    # itself (0: only when RunRetentionPurge asks).
    retention_minimum_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MINIMUM_DAYS),
                                                   validation_alias="CRM_PROFILE_RETENTION_MINIMUM_DAYS")
    retention_purge_interval_hours: float = Field(default=24.0, ge=0, le=24 * 31,
                                                  validation_alias="CRM_PROFILE_RETENTION_PURGE_INTERVAL_HOURS")
    # Derived features: the RFM window, and how often the refresher recomputes customers whose
    # events arrived (in batches of up to a thousand).
    features_rfm_window_days: int = Field(default=365, ge=1, le=3650,
                                          validation_alias="CRM_PROFILE_FEATURES_RFM_WINDOW_DAYS")
    features_refresh_seconds: float = Field(default=1.0, gt=0, le=60,
                                            validation_alias="CRM_PROFILE_FEATURES_REFRESH_SECONDS")
    # Event ingest: the quota per IngestEvents message (events, and bytes encoded; over either
    # fails the call with INVALID_ARGUMENT), and how far in the future an event may happen (the
    # sources' clocks drift).
    events_max_batch_events: int = Field(default=1000, ge=1, le=1000,
                                         validation_alias="CRM_PROFILE_EVENTS_MAX_BATCH_EVENTS")
    events_max_message_bytes: int = Field(default=4 * 1024**2, ge=64 * 1024, le=16 * 1024**2,
                                          validation_alias="CRM_PROFILE_EVENTS_MAX_MESSAGE_BYTES")
    events_max_clock_skew_seconds: int = Field(default=300, ge=0, le=24 * 3600,
                                               validation_alias="CRM_PROFILE_EVENTS_MAX_CLOCK_SKEW_SECONDS")

    @property
    def feed_retention(self) -> timedelta:
        return timedelta(days=self.feed_retention_days)
