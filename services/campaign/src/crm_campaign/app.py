"""Wiring of the campaign service: settings, collaborators, servicers. No logic here."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from crm.campaign.v1 import campaign_service_pb2_grpc
from crm_campaign import tables
from crm_campaign.api import campaign_messages, offer_messages
from crm_campaign.api.access import ACCESS, SERVICE
from crm_campaign.api.campaign_servicer import CampaignServicer
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.campaigns.service import Campaigns
from crm_campaign.offers.repository import OfferRepository
from crm_campaign.offers.service import Offers
from crmkit.app import Runtime, ServiceSpec
from crmkit.idempotency import IdempotencyKeys
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


async def wire(runtime: Runtime[CampaignSettings]) -> list[ServiceBinding]:
    settings = runtime.settings
    outbox = Outbox(tables.outbox_event)
    idempotency = IdempotencyKeys(tables.idempotency_key)
    page_tokens = PageTokens(settings.derived_key("campaign.page-token"))
    campaign_repository, offer_repository = CampaignRepository(), OfferRepository()
    campaigns = Campaigns(
        repository=campaign_repository, offers=offer_repository, outbox=outbox,
        idempotency=idempotency, page_tokens=page_tokens, feed_payload=campaign_messages.to_proto,
        reporting_currency=settings.reporting_currency,
    )
    offers = Offers(
        repository=offer_repository, campaigns=campaign_repository, outbox=outbox,
        idempotency=idempotency, page_tokens=page_tokens, feed_payload=offer_messages.to_proto,
        reporting_currency=settings.reporting_currency,
    )
    feed = runtime.change_feed(tables.outbox_event, tables.outbox_state, poll_seconds=settings.feed_poll_seconds)
    # RPCs it does not override answer UNIMPLEMENTED from the generated base, which the typed
    # stubs mark abstract.
    servicer = CampaignServicer(db=runtime.db, campaigns=campaigns, offers=offers, feed=feed)  # type: ignore[abstract]  # grpc stubs: mypy-protobuf marks every RPC abstract
    return [ServiceBinding(
        descriptor=SERVICE,
        register=lambda server: campaign_service_pb2_grpc.add_CampaignServiceServicer_to_server(servicer, server),
        policy=ACCESS,
    )]


SPEC = ServiceSpec(name="campaign", settings_type=CampaignSettings,
                   migrations=Path(__file__).parent / "migrations", wire=wire)
