"""Wiring of the campaign service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from crm.campaign.v1 import campaign_service_pb2_grpc
from crm_campaign import tables
from crm_campaign.api import (
    audience_messages,
    campaign_messages,
    care_messages,
    contact_import_messages,
    dispatch_messages,
    engagement_messages,
    offer_messages,
    propensity_messages,
    trigger_messages,
)
from crm_campaign.api.access import ACCESS, SERVICE
from crm_campaign.api.campaign_servicer import CampaignServicer
from crm_campaign.api.operation_rpcs import KINDS
from crm_campaign.audience.builds import AudienceBuilds
from crm_campaign.audience.complaints import follow_feedback
from crm_campaign.audience.contactability import follow_profile
from crm_campaign.audience.inputs import AudienceInputs
from crm_campaign.audience.memberships import follow_segment
from crm_campaign.audience.repository import AudienceRepository
from crm_campaign.audience.service import Audiences
from crm_campaign.audience.suitability import NoRisk, RiskSuitability, Suitability
from crm_campaign.book.follower import follow_profile_customers
from crm_campaign.book.repository import BookRepository
from crm_campaign.campaigns.model import CampaignType, Channel
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.campaigns.service import Campaigns
from crm_campaign.care.repository import CareTaskRepository
from crm_campaign.care.service import CareTasks, RaisedCareTasks
from crm_campaign.contacts.repository import ContactRepository
from crm_campaign.contacts.service import ContactImports
from crm_campaign.dispatch.adapters.base import ChannelAdapter
from crm_campaign.dispatch.adapters.file import FileAdapter
from crm_campaign.dispatch.adapters.webhook import WebhookAdapter
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.repository import DispatchRepository
from crm_campaign.dispatch.service import Dispatcher, Dispatches
from crm_campaign.engagement.repository import EngagementRepository
from crm_campaign.engagement.service import Engagement
from crm_campaign.history.repository import HistoryRepository
from crm_campaign.history.service import ContactHistory
from crm_campaign.loyalty.expiry import LoyaltyExpiry
from crm_campaign.loyalty.repository import LoyaltyRepository
from crm_campaign.loyalty.service import Loyalty
from crm_campaign.nba.catalogue import RunningCampaigns
from crm_campaign.nba.repository import DecisionRepository
from crm_campaign.nba.service import NextBestActions
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.offers.service import Offers
from crm_campaign.propensity.customer_features import follow_profile_customer_features
from crm_campaign.propensity.repository import PropensityRepository
from crm_campaign.propensity.scorers import PropensityScorers
from crm_campaign.propensity.service import PropensityModels
from crm_campaign.rates.repository import ResponseRateRepository
from crm_campaign.rates.rules import DEFAULT_PRIOR_WEIGHT, DEFAULT_RATE, Prior
from crm_campaign.rates.service import DEFAULT_TTL_SECONDS, ResponseRates
from crm_campaign.renewals import feed as renewal_feed
from crm_campaign.renewals.repository import RenewalRepository
from crm_campaign.renewals.service import Renewals
from crm_campaign.results.repository import ResultsRepository
from crm_campaign.results.service import CampaignResults
from crm_campaign.triggers.calendar_repository import CalendarRepository
from crm_campaign.triggers.calendar_scan import CalendarScan
from crm_campaign.triggers.candidates import TriggerCandidates
from crm_campaign.triggers.firing import TriggerFiring
from crm_campaign.triggers.firing_repository import FiringRepository
from crm_campaign.triggers.repository import TriggerRuleRepository
from crm_campaign.triggers.service import TriggerRules
from crmkit.app import Runtime, ServiceSpec
from crmkit.audit import AuditWriter
from crmkit.idempotency import IdempotencyKeys
from crmkit.operations import OperationRunner, Operations
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens
from crmkit.server import ServiceBinding
from crmkit.settings import GrpcServiceSettings


class CampaignSettings(GrpcServiceSettings):
    database_url: str = Field(validation_alias="CRM_CAMPAIGN_DATABASE_URL")
    port: int = Field(default=50053, validation_alias="CRM_CAMPAIGN_PORT", ge=0, le=65535)
    # ISO 4217 code of the bank's reporting currency: costs and expected values are in it.
    reporting_currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$",
                                    validation_alias="CRM_CAMPAIGN_REPORTING_CURRENCY")
    feed_poll_seconds: float = Field(default=0.25, gt=0, le=10, validation_alias="CRM_CAMPAIGN_FEED_POLL_SECONDS")
    # Templates are adapter ids: the template ids each channel's adapter knows, by channel name,
    # as JSON (e.g. {"SMS": ["sms-td-renewal-v2"], "MOBILE_APP": ["app-td-banner"]}).
    templates: dict[str, list[str]] = Field(default_factory=dict, validation_alias="CRM_CAMPAIGN_TEMPLATES")
    # Which adapter sends each channel, by channel name: "file" or "webhook" (JSON). A channel
    # without one fails its dispatches with CHANNEL_NOT_CONFIGURED.
    channel_adapters: dict[str, str] = Field(default_factory=dict, validation_alias="CRM_CAMPAIGN_CHANNEL_ADAPTERS")
    # The file adapter's directory: one JSON-lines file per channel, owned by one process.
    dispatch_directory: str = Field(default="", validation_alias="CRM_CAMPAIGN_DISPATCH_DIRECTORY")
    webhook_url: str = Field(default="", validation_alias="CRM_CAMPAIGN_WEBHOOK_URL")
    # Signs webhook bodies (HMAC-SHA256); only needed when a channel uses the webhook adapter.
    webhook_secret: SecretStr | None = Field(default=None, validation_alias="CRM_CAMPAIGN_WEBHOOK_SECRET")
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60,
                                           validation_alias="CRM_CAMPAIGN_WEBHOOK_TIMEOUT_SECONDS")
    webhook_max_attempts: int = Field(default=4, ge=1, le=10, validation_alias="CRM_CAMPAIGN_WEBHOOK_MAX_ATTEMPTS")
    # The dispatcher runs in the service process unless turned off (e.g. to run it elsewhere).
    dispatcher_enabled: bool = Field(default=True, validation_alias="CRM_CAMPAIGN_DISPATCHER_ENABLED")
    dispatch_batch_size: int = Field(default=200, ge=1, le=10_000,
                                     validation_alias="CRM_CAMPAIGN_DISPATCH_BATCH_SIZE")
    dispatch_poll_seconds: float = Field(default=1.0, gt=0, le=60,
                                         validation_alias="CRM_CAMPAIGN_DISPATCH_POLL_SECONDS")
    operation_poll_seconds: float = Field(default=0.5, gt=0, le=10,
                                          validation_alias="CRM_CAMPAIGN_OPERATION_POLL_SECONDS")
    # Campaign types whose audiences keep customers with an open complaint (by type name, e.g.
    # ["INBOUND"]); every other type suppresses them.
    open_complaint_exempt_types: list[str] = Field(default_factory=list,
                                                   validation_alias="CRM_CAMPAIGN_OPEN_COMPLAINT_EXEMPT_TYPES")
    # Profile's address, whose change feed keeps the marketing-contactability read model (empty: follow none).
    profile_target: str = Field(default="127.0.0.1:50051", validation_alias="CRM_CAMPAIGN_PROFILE_TARGET")
    # Segment's address, whose change feed keeps the segment-membership read model (empty: follow none).
    segment_target: str = Field(default="127.0.0.1:50052", validation_alias="CRM_CAMPAIGN_SEGMENT_TARGET")
    # Feedback's address, whose change feed keeps the open-complaint read model (empty: follow none).
    feedback_target: str = Field(default="127.0.0.1:50054", validation_alias="CRM_CAMPAIGN_FEEDBACK_TARGET")
    # Risk's address, asked `CheckSuitabilityBatch` for offers above the lowest risk level (empty:
    # none, and every such offer's candidates are SUITABILITY_UNKNOWN).
    risk_target: str = Field(default="127.0.0.1:50055", validation_alias="CRM_CAMPAIGN_RISK_TARGET")
    # Each suitability call's deadline; past it the build's answer is SUITABILITY_UNKNOWN.
    suitability_deadline_seconds: float = Field(default=5.0, gt=0, le=60,
                                                validation_alias="CRM_CAMPAIGN_SUITABILITY_DEADLINE_SECONDS")
    # The deadline of next best action's suitability calls: the answer is for a customer waiting at a
    # counter or in the app, so it is short; past it the answer leaves risky offers out (degraded).
    nba_suitability_deadline_seconds: float = Field(default=0.3, gt=0, le=10,
                                                    validation_alias="CRM_CAMPAIGN_NBA_SUITABILITY_DEADLINE_SECONDS")
    feed_max_backoff_seconds: float = Field(default=10.0, gt=0, le=300,
                                            validation_alias="CRM_CAMPAIGN_FEED_MAX_BACKOFF_SECONDS")
    # How long a claimed dispatch stays claimed: past it, another dispatcher hands it over again.
    dispatch_lease_seconds: float = Field(default=120, ge=1, le=3600,
                                          validation_alias="CRM_CAMPAIGN_DISPATCH_LEASE_SECONDS")
    # The observed response rates' prior (rates.rules): the bank-wide default rate a new offer
    # starts at, and how many pseudo-contacts it is worth.
    default_response_rate: float = Field(default=DEFAULT_RATE, gt=0, lt=1,
                                         validation_alias="CRM_CAMPAIGN_DEFAULT_RESPONSE_RATE")
    response_rate_prior_weight: float = Field(default=DEFAULT_PRIOR_WEIGHT, gt=0, le=100_000,
                                              validation_alias="CRM_CAMPAIGN_RESPONSE_RATE_PRIOR_WEIGHT")
    # How long next best action and triggers reuse the observed rates before reading them again.
    response_rate_cache_seconds: float = Field(default=DEFAULT_TTL_SECONDS, ge=0, le=3600,
                                               validation_alias="CRM_CAMPAIGN_RESPONSE_RATE_CACHE_SECONDS")

    @model_validator(mode="after")
    def _adapters_configured(self) -> CampaignSettings:
        channels = {c.name for c in Channel if c}
        for name in [*self.templates, *self.channel_adapters]:
            if name not in channels:
                raise ValueError(f"CRM_CAMPAIGN_TEMPLATES / CRM_CAMPAIGN_CHANNEL_ADAPTERS: unknown channel {name!r}; "
                                 f"known: {', '.join(sorted(channels))}")
        types = {t.name for t in CampaignType if t}
        if set(self.open_complaint_exempt_types) - types:
            raise ValueError(f"CRM_CAMPAIGN_OPEN_COMPLAINT_EXEMPT_TYPES: a campaign type is one of "
                             f"{', '.join(sorted(types))}")
        kinds = set(self.channel_adapters.values())
        if kinds - {"file", "webhook"}:
            raise ValueError("CRM_CAMPAIGN_CHANNEL_ADAPTERS: an adapter is \"file\" or \"webhook\"")
        if "file" in kinds and not self.dispatch_directory:
            raise ValueError("CRM_CAMPAIGN_DISPATCH_DIRECTORY is required when a channel uses the file adapter")
        if "webhook" in kinds and not (self.webhook_url and self.webhook_secret is not None):
            raise ValueError("CRM_CAMPAIGN_WEBHOOK_URL and CRM_CAMPAIGN_WEBHOOK_SECRET are required when a channel "
                             "uses the webhook adapter")
        return self

    def _webhook_secret(self) -> bytes:
        return self.webhook_secret.get_secret_value().encode() if self.webhook_secret is not None else b""

    def make_channel_adapters(self) -> ChannelAdapters:
        """The configured adapters (made once per process, closed with the dispatcher)."""
        made: dict[str, ChannelAdapter] = {}
        if "file" in self.channel_adapters.values():
            made["file"] = FileAdapter(Path(self.dispatch_directory))
        if "webhook" in self.channel_adapters.values():
            made["webhook"] = WebhookAdapter(url=self.webhook_url,
                                             secret=self._webhook_secret(),
                                             timeout_seconds=self.webhook_timeout_seconds,
                                             max_attempts=self.webhook_max_attempts)
        return ChannelAdapters.of({int(Channel[name]): made[kind] for name, kind in self.channel_adapters.items()},
                                  self.templates)


async def wire(runtime: Runtime[CampaignSettings]) -> list[ServiceBinding]:
    settings = runtime.settings
    outbox = Outbox(tables.outbox_event)
    idempotency = IdempotencyKeys(tables.idempotency_key)
    page_tokens = PageTokens(settings.derived_key("campaign.page-token"))
    campaign_repository, offer_repository = CampaignRepository(), OfferRepository()
    adapters = settings.make_channel_adapters()
    campaigns = Campaigns(
        repository=campaign_repository, offers=offer_repository, outbox=outbox,
        idempotency=idempotency, page_tokens=page_tokens, feed_payload=campaign_messages.to_proto,
        reporting_currency=settings.reporting_currency,
    )
    offers = Offers(
        repository=offer_repository, campaigns=campaign_repository, outbox=outbox,
        idempotency=idempotency, page_tokens=page_tokens, feed_payload=offer_messages.to_proto,
        reporting_currency=settings.reporting_currency, knows_template=adapters.knows_template,
    )
    dispatch_repository = DispatchRepository()
    dispatches = Dispatches(repository=dispatch_repository, campaigns=campaign_repository, outbox=outbox,
                            page_tokens=page_tokens, feed_payload=dispatch_messages.to_proto)
    # Reads of personal data (loyalty accounts, contact history, next best action) are audited by
    # group commit (crmkit.audit), on a connection of its own.
    audit = AuditWriter(runtime.db, tables.audit_record)
    audit.start()
    runtime.on_close(audit.close)
    book = BookRepository()  # the relationship managers' books: one read model, `book.rules` the one rule
    loyalty = Loyalty(repository=LoyaltyRepository(), book=book, idempotency=idempotency, page_tokens=page_tokens,
                      audit=audit)
    expiry = LoyaltyExpiry(db=runtime.db, loyalty=loyalty)
    expiry.start()
    runtime.on_close(expiry.close)
    engagement = Engagement(
        repository=EngagementRepository(), campaigns=campaign_repository, offers=offer_repository,
        dispatches=dispatch_repository, outbox=outbox, idempotency=idempotency,
        response_payload=engagement_messages.response_to_proto,
        conversion_payload=engagement_messages.conversion_to_proto, reporting_currency=settings.reporting_currency,
        decisions=DecisionRepository(), loyalty=loyalty)
    care_tasks = CareTasks(
        repository=CareTaskRepository(), book=book, offers=offer_repository, engagement=engagement,
        outbox=outbox, idempotency=idempotency, page_tokens=page_tokens, feed_payload=care_messages.to_proto)
    history = ContactHistory(repository=HistoryRepository(), book=book, audit=audit, page_tokens=page_tokens)
    results = CampaignResults(repository=ResultsRepository(), campaigns=campaign_repository)
    operations = Operations(runtime.db, tables.operation, page_tokens, kinds=KINDS,
                            poll_seconds=settings.operation_poll_seconds, draining=runtime.draining)
    # Builds run in the service process (the funnel is set-based I/O plus one pass in Python);
    # contact-file reading and propensity training run in the one spawned worker process,
    # started when first needed.
    runner = OperationRunner(operations=operations, service=runtime.name, error_domain=SPEC.error_domain,
                             workers=1, log_level=settings.log_level)
    runner.start()
    runtime.on_close(lambda: runner.close(grace=settings.shutdown_grace_seconds))
    suitability: Suitability = NoRisk()
    if settings.risk_target:
        risk = RiskSuitability(target=settings.risk_target, settings=settings,
                               deadline_seconds=settings.suitability_deadline_seconds)
        runtime.on_close(risk.close)
        suitability = risk
    # Propensity models loaded once per process, shared by audience builds and next best action.
    scorers = PropensityScorers(db=runtime.db, repository=PropensityRepository())
    runtime.on_close(scorers.close)
    # Observed response rates: fresh per audience build, cached for next best action and triggers.
    rates = ResponseRates(db=runtime.db, repository=ResponseRateRepository(),
                          prior=Prior(settings.default_response_rate, settings.response_rate_prior_weight),
                          ttl_seconds=settings.response_rate_cache_seconds)
    builds = AudienceBuilds(
        db=runtime.db, operations=operations, runner=runner, campaigns=campaign_repository, offers=offer_repository,
        inputs=AudienceInputs(), idempotency=idempotency, payload=audience_messages.build_to_proto,
        audiences=Audiences(repository=AudienceRepository(), campaigns=campaign_repository, dispatches=dispatches),
        dispatches=dispatches,
        exempt_from_complaints=frozenset(CampaignType[name] for name in settings.open_complaint_exempt_types),
        suitability=suitability, scorers=scorers, rates=rates)
    nba_suitability: Suitability = NoRisk()
    if settings.risk_target:
        nba_risk = RiskSuitability(target=settings.risk_target, settings=settings,
                                   deadline_seconds=settings.nba_suitability_deadline_seconds)
        runtime.on_close(nba_risk.close)
        nba_suitability = nba_risk
    next_best_actions = NextBestActions(
        db=runtime.db, repository=DecisionRepository(), audit=audit, suitability=nba_suitability, scorers=scorers,
        rates=rates,
        catalogue=RunningCampaigns(
            db=runtime.db, campaigns=campaign_repository, offers=offer_repository,
            exempt_from_complaints=frozenset(CampaignType[name] for name in settings.open_complaint_exempt_types)))
    contact_imports = ContactImports(
        db=runtime.db, operations=operations, runner=runner, repository=ContactRepository(), idempotency=idempotency,
        result_payload=contact_import_messages.result_to_proto, metadata_payload=contact_import_messages.metadata_of,
        error_domain=SPEC.error_domain)
    propensity = PropensityModels(db=runtime.db, operations=operations, runner=runner,
                                  repository=PropensityRepository(), idempotency=idempotency,
                                  payload=propensity_messages.to_proto)
    dispatcher = Dispatcher(
        db=runtime.db, repository=dispatch_repository, adapters=adapters, outbox=outbox,
        feed_payload=dispatch_messages.to_proto, batch_size=settings.dispatch_batch_size,
        lease=timedelta(seconds=settings.dispatch_lease_seconds), poll_seconds=settings.dispatch_poll_seconds)
    if settings.dispatcher_enabled:
        dispatcher.start()
    runtime.on_close(dispatcher.close)
    firing = TriggerFiring(
        repository=FiringRepository(), campaigns=campaign_repository, offers=offer_repository,
        audiences=Audiences(repository=AudienceRepository(), campaigns=campaign_repository, dispatches=dispatches),
        dispatches=dispatches, candidates=TriggerCandidates(), book=book,
        care_tasks=RaisedCareTasks(repository=CareTaskRepository(), outbox=outbox, feed_payload=care_messages.to_proto),
        exempt_from_complaints=frozenset(CampaignType[name] for name in settings.open_complaint_exempt_types),
        rates=rates)
    # Anniversary and dormancy rules fire from the calendar read model, on an hourly scan.
    scan = CalendarScan(db=runtime.db, firing=firing, rules=FiringRepository(), calendar=CalendarRepository())
    scan.start()
    runtime.on_close(scan.close)
    # Trigger rules fire on profile's and segment's events, in the transaction that applies them.
    for target, follow in ((settings.profile_target, partial(follow_profile, triggers=firing.apply)),
                           (settings.segment_target, partial(follow_segment, triggers=firing.apply)),
                           (settings.feedback_target, follow_feedback),
                           (settings.profile_target, partial(follow_profile_customers, holdings=renewal_feed.apply)),
                           (settings.profile_target, follow_profile_customer_features)):
        if target:
            follower = follow(db=runtime.db, settings=settings, target=target,
                              max_backoff_seconds=settings.feed_max_backoff_seconds)
            runtime.on_close(follower.close)
            runtime.add_health_details(follower.details)
            follower.start()
    feed = runtime.change_feed(tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds)
    servicer = CampaignServicer(
        db=runtime.db, campaigns=campaigns, offers=offers, dispatches=dispatches, engagement=engagement,
        results=results, builds=builds, operations=operations, reporting_currency=settings.reporting_currency,
        feed=feed, care_tasks=care_tasks, history=history, triggers=TriggerRules(
            repository=TriggerRuleRepository(), campaigns=campaign_repository, offers=offer_repository, outbox=outbox,
            idempotency=idempotency, page_tokens=page_tokens, feed_payload=trigger_messages.to_proto),
        next_best_actions=next_best_actions, loyalty=loyalty,
        renewals=Renewals(repository=RenewalRepository(), page_tokens=page_tokens), contact_imports=contact_imports,
        propensity=propensity)
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: campaign_service_pb2_grpc.add_CampaignServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


SPEC = ServiceSpec(name="campaign", settings_type=CampaignSettings,
                   migrations=Path(__file__).parent / "migrations", wire=wire)
