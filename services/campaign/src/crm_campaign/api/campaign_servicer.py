"""CampaignService servicer: proto -> arguments, one unit of work and one service call in it, result -> proto.

Each area's RPCs live in a mixin of its own (care, history, loyalty, next best action, operations,
triggers); together they serve every RPC of the contract (mypy checks none is left abstract).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import campaign_service_pb2_grpc
from crm_campaign.api import campaign_messages, dispatch_messages, engagement_messages, offer_messages
from crm_campaign.api import value_messages as values
from crm_campaign.api.care_rpcs import CareRpcs
from crm_campaign.api.contact_import_rpcs import ContactImportRpcs
from crm_campaign.api.history_rpcs import HistoryRpcs
from crm_campaign.api.loyalty_rpcs import LoyaltyRpcs
from crm_campaign.api.nba_rpcs import NextBestActionRpcs
from crm_campaign.api.operation_rpcs import OperationRpcs
from crm_campaign.api.propensity_rpcs import PropensityRpcs
from crm_campaign.api.trigger_rpcs import TriggerRuleRpcs
from crm_campaign.audience.builds import AudienceBuilds
from crm_campaign.campaigns.model import CampaignType
from crm_campaign.campaigns.rules import CAMPAIGN_ID
from crm_campaign.campaigns.service import Campaigns
from crm_campaign.care.service import CareTasks
from crm_campaign.contacts.service import ContactImports
from crm_campaign.dispatch.service import Dispatches
from crm_campaign.engagement.service import Engagement
from crm_campaign.history.service import ContactHistory
from crm_campaign.loyalty.service import Loyalty
from crm_campaign.nba.service import NextBestActions
from crm_campaign.offers.rules import OFFER_ID
from crm_campaign.offers.service import Offers
from crm_campaign.propensity.service import PropensityModels
from crm_campaign.renewals.service import Renewals
from crm_campaign.results.service import CampaignResults
from crm_campaign.triggers.service import TriggerRules
from crmkit.auth import current_principal
from crmkit.clock import utc_now
from crmkit.db import Database
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.idempotency import parse_request_id
from crmkit.operations import Operations
from crmkit.outbox import ChangeFeed
from crmkit.resources import ResourceName

# A name whose id the rules would refuse is bad input, as in every service, not a missing resource.
CAMPAIGN = ResourceName("campaigns/{campaign_id}", id_pattern=CAMPAIGN_ID.pattern)
CUSTOMER = ResourceName("customers/{customer_id}")
OFFER = ResourceName("campaigns/{campaign_id}/offers/{offer_id}",
                     id_pattern={"campaign_id": CAMPAIGN_ID.pattern, "offer_id": OFFER_ID.pattern})


class CampaignServicer(CareRpcs, ContactImportRpcs, HistoryRpcs, LoyaltyRpcs, NextBestActionRpcs, OperationRpcs,
                       PropensityRpcs, TriggerRuleRpcs, campaign_service_pb2_grpc.CampaignServiceServicer):
    def __init__(self, *, db: Database, campaigns: Campaigns, offers: Offers, dispatches: Dispatches,
                 engagement: Engagement, results: CampaignResults, builds: AudienceBuilds, operations: Operations,
                 reporting_currency: str, feed: ChangeFeed, care_tasks: CareTasks, history: ContactHistory,
                 triggers: TriggerRules, next_best_actions: NextBestActions, loyalty: Loyalty,
                 renewals: Renewals, contact_imports: ContactImports, propensity: PropensityModels) -> None:
        self._db = db
        self._care_tasks = care_tasks
        self._history = history
        self._triggers = triggers
        self._next_best_actions = next_best_actions
        self._loyalty = loyalty
        self._renewals = renewals
        self._contact_imports = contact_imports
        self._propensity = propensity
        self._builds = builds
        self._operations = operations
        self._engagement = engagement
        self._results = results
        self._currency = reporting_currency
        self._dispatches = dispatches
        self._feed = feed
        self._campaigns = campaigns
        self._offers = offers

    # --- campaigns ------------------------------------------------------------------------------

    async def CreateCampaign(self, request: pb.CreateCampaignRequest, context: grpc.aio.ServicerContext
                             ) -> pb.CreateCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.create(
                uow=uow, campaign=campaign_messages.to_domain(request.campaign),
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.CreateCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def GetCampaign(self, request: pb.GetCampaignRequest, context: grpc.aio.ServicerContext
                          ) -> pb.GetCampaignResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            campaign = await self._campaigns.get(uow=uow, campaign_id=CAMPAIGN.parse_one(request.name))
        return pb.GetCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def ListCampaigns(self, request: pb.ListCampaignsRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ListCampaignsResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._campaigns.list(
                uow=uow, page_size=request.page_size, page_token=request.page_token, states=list(request.states),
                type_=request.type, segment=request.segment, creator=request.creator,
                active_during=(values.read_interval(request.active_during) if request.HasField("active_during")
                               else None))
        return pb.ListCampaignsResponse(campaigns=[campaign_messages.to_proto(c) for c in page.items],
                                        next_page_token=page.next_page_token)

    async def UpdateCampaign(self, request: pb.UpdateCampaignRequest, context: grpc.aio.ServicerContext
                             ) -> pb.UpdateCampaignResponse:
        campaign_id = CAMPAIGN.parse_one(request.campaign.name, "campaign.name")
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.update(
                uow=uow, changes=campaign_messages.to_domain(request.campaign, campaign_id=campaign_id),
                paths=list(request.update_mask.paths), etag=request.campaign.etag, actor=current_principal())
        return pb.UpdateCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def DeleteCampaign(self, request: pb.DeleteCampaignRequest, context: grpc.aio.ServicerContext
                             ) -> pb.DeleteCampaignResponse:
        async with self._db.unit_of_work() as uow:
            await self._campaigns.delete(uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag,
                                         actor=current_principal())
        return pb.DeleteCampaignResponse()

    # --- lifecycle ------------------------------------------------------------------------------

    async def SubmitCampaign(self, request: pb.SubmitCampaignRequest, context: grpc.aio.ServicerContext
                             ) -> pb.SubmitCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.submit(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.SubmitCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def ApproveCampaign(self, request: pb.ApproveCampaignRequest, context: grpc.aio.ServicerContext
                              ) -> pb.ApproveCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.approve(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag, comment=request.comment,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.ApproveCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def RejectCampaign(self, request: pb.RejectCampaignRequest, context: grpc.aio.ServicerContext
                             ) -> pb.RejectCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.reject(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag, reason=request.reason,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.RejectCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def ScheduleCampaign(self, request: pb.ScheduleCampaignRequest, context: grpc.aio.ServicerContext
                               ) -> pb.ScheduleCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.schedule(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag,
                launch_at=values.read_timestamp(request.launch_time) if request.HasField("launch_time") else None,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.ScheduleCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def LaunchCampaign(self, request: pb.LaunchCampaignRequest, context: grpc.aio.ServicerContext
                             ) -> pb.LaunchCampaignResponse:
        request_id = parse_request_id(request.request_id)
        started = None
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.launch(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag,
                request_id=request_id, request=request, actor=current_principal())
            if campaign.type == CampaignType.BATCH and not request.defer_audience_build:
                # The first build and dispatch start with the launch, in its transaction; a retried
                # launch (same request id) gets the same build back.
                build_id = uuid.uuid5(request_id, "first-audience-build") if request_id else uuid.uuid4()
                started = await self._builds.start(
                    uow=uow, campaign_id=campaign.campaign_id, dry_run=False, request_id=build_id,
                    request=pb.BuildAudienceRequest(name=request.name, request_id=str(build_id)),
                    actor=current_principal())
        if started is None:
            return pb.LaunchCampaignResponse(campaign=campaign_messages.to_proto(campaign))
        started.launch()
        return pb.LaunchCampaignResponse(campaign=campaign_messages.to_proto(campaign), operation=started.operation)

    async def PauseCampaign(self, request: pb.PauseCampaignRequest, context: grpc.aio.ServicerContext
                            ) -> pb.PauseCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.pause(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag, reason=request.reason,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.PauseCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def ResumeCampaign(self, request: pb.ResumeCampaignRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ResumeCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.resume(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.ResumeCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def CompleteCampaign(self, request: pb.CompleteCampaignRequest, context: grpc.aio.ServicerContext
                               ) -> pb.CompleteCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.complete(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.CompleteCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    async def CancelCampaign(self, request: pb.CancelCampaignRequest, context: grpc.aio.ServicerContext
                             ) -> pb.CancelCampaignResponse:
        async with self._db.unit_of_work() as uow:
            campaign = await self._campaigns.cancel(
                uow=uow, campaign_id=CAMPAIGN.parse_one(request.name), etag=request.etag, reason=request.reason,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.CancelCampaignResponse(campaign=campaign_messages.to_proto(campaign))

    # --- offers ---------------------------------------------------------------------------------

    async def CreateOffer(self, request: pb.CreateOfferRequest, context: grpc.aio.ServicerContext
                          ) -> pb.CreateOfferResponse:
        campaign_id = CAMPAIGN.parse_one(request.parent, "parent")
        async with self._db.unit_of_work() as uow:
            offer = await self._offers.create(
                uow=uow, offer=offer_messages.to_domain(request.offer, campaign_id=campaign_id),
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.CreateOfferResponse(offer=offer_messages.to_proto(offer))

    async def GetOffer(self, request: pb.GetOfferRequest, context: grpc.aio.ServicerContext) -> pb.GetOfferResponse:
        campaign_id, offer_id = OFFER.parse(request.name)
        async with self._db.unit_of_work(read_only=True) as uow:
            offer = await self._offers.get(uow=uow, campaign_id=campaign_id, offer_id=offer_id)
        return pb.GetOfferResponse(offer=offer_messages.to_proto(offer))

    async def ListOffers(self, request: pb.ListOffersRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ListOffersResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._offers.list(uow=uow, campaign_id=CAMPAIGN.parse_one(request.parent, "parent"),
                                           page_size=request.page_size, page_token=request.page_token)
        return pb.ListOffersResponse(offers=[offer_messages.to_proto(o) for o in page.items],
                                     next_page_token=page.next_page_token)

    async def UpdateOffer(self, request: pb.UpdateOfferRequest, context: grpc.aio.ServicerContext
                          ) -> pb.UpdateOfferResponse:
        campaign_id, offer_id = OFFER.parse(request.offer.name, "offer.name")
        async with self._db.unit_of_work() as uow:
            offer = await self._offers.update(
                uow=uow, changes=offer_messages.to_domain(request.offer, campaign_id=campaign_id, offer_id=offer_id),
                paths=list(request.update_mask.paths), etag=request.offer.etag, actor=current_principal())
        return pb.UpdateOfferResponse(offer=offer_messages.to_proto(offer))

    async def DeleteOffer(self, request: pb.DeleteOfferRequest, context: grpc.aio.ServicerContext
                          ) -> pb.DeleteOfferResponse:
        campaign_id, offer_id = OFFER.parse(request.name)
        async with self._db.unit_of_work() as uow:
            await self._offers.delete(uow=uow, campaign_id=campaign_id, offer_id=offer_id, etag=request.etag,
                                      actor=current_principal())
        return pb.DeleteOfferResponse()

    # --- audiences and dispatch ------------------------------------------------------------------

    async def BuildAudience(self, request: pb.BuildAudienceRequest, context: grpc.aio.ServicerContext
                            ) -> pb.BuildAudienceResponse:
        campaign_id = CAMPAIGN.parse_one(request.name)
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            started = await self._builds.start(uow=uow, campaign_id=campaign_id, dry_run=request.dry_run,
                                               request_id=request_id, request=request, actor=current_principal())
        started.launch()
        return pb.BuildAudienceResponse(operation=started.operation)

    async def ListDispatches(self, request: pb.ListDispatchesRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListDispatchesResponse:
        campaign_id = None if request.parent == "campaigns/-" else CAMPAIGN.parse_one(request.parent, "parent")
        customer_id = CUSTOMER.parse_one(request.customer, "customer") if request.customer else ""
        offer_id = ""
        if request.offer:
            offer_campaign, offer_id = OFFER.parse(request.offer, "offer")
            if campaign_id is not None and offer_campaign != campaign_id:
                raise InvalidArgument([FieldViolation("offer", "must be an offer of the campaign named by parent")])
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._dispatches.list(
                uow=uow, campaign_id=campaign_id, customer_id=customer_id, offer_id=offer_id,
                channel=request.channel, state=request.state, page_size=request.page_size,
                page_token=request.page_token)
        return pb.ListDispatchesResponse(dispatches=[dispatch_messages.to_proto(d) for d in page.items],
                                         next_page_token=page.next_page_token)

    # --- responses, conversions and results -------------------------------------------------------

    async def RecordResponse(self, request: pb.RecordResponseRequest, context: grpc.aio.ServicerContext
                             ) -> pb.RecordResponseResponse:
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            response = await self._engagement.record_response(
                uow=uow, response=engagement_messages.response_to_domain(request.response), request_id=request_id,
                request=request, actor=current_principal())
        return pb.RecordResponseResponse(response=engagement_messages.response_to_proto(response))

    async def RecordConversion(self, request: pb.RecordConversionRequest, context: grpc.aio.ServicerContext
                               ) -> pb.RecordConversionResponse:
        request_id = parse_request_id(request.request_id)
        async with self._db.unit_of_work() as uow:
            conversion = await self._engagement.record_conversion(
                uow=uow, conversion=engagement_messages.conversion_to_domain(request.conversion),
                request_id=request_id, request=request, actor=current_principal())
        return pb.RecordConversionResponse(conversion=engagement_messages.conversion_to_proto(conversion))

    async def GetCampaignResults(self, request: pb.GetCampaignResultsRequest, context: grpc.aio.ServicerContext
                                 ) -> pb.GetCampaignResultsResponse:
        campaign_id = CAMPAIGN.parse_one(request.campaign, "campaign")
        async with self._db.unit_of_work(read_only=True) as uow:
            results = await self._results.get(uow=uow, campaign_id=campaign_id,
                                              confidence_level=request.confidence_level)
        return pb.GetCampaignResultsResponse(results=engagement_messages.results_to_proto(
            results, campaign_id=campaign_id, currency=self._currency, as_of=utc_now()))

    # --- the change feed --------------------------------------------------------------------------

    async def WatchChanges(self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
                           ) -> AsyncIterator[pb.WatchChangesResponse]:
        async for events in self._feed.stream(after_cursor=request.after_cursor,
                                              resource_types=list(request.resource_types)):
            yield pb.WatchChangesResponse(events=events)
