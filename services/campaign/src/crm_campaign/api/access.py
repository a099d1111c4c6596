"""Who may call which CampaignService RPC (deny by default: the server refuses to start with an
RPC missing here). Four-eyes approval and the relationship manager's book apply on top."""

from __future__ import annotations

from crm.campaign.v1 import campaign_service_pb2
from crmkit.auth import Role

SERVICE = campaign_service_pb2.DESCRIPTOR.services_by_name["CampaignService"]

# Marketers run campaigns; a second marketer or an admin approves (the four-eyes rule is checked
# against the campaign, not here).
MANAGERS = frozenset({Role.MARKETER, Role.ADMIN})
# Analysts and auditors read campaigns, offers and results.
READERS = MANAGERS | {Role.ANALYST, Role.AUDITOR}
# Channel applications (and the platform's own services) record what customers did.
RECORDERS = frozenset({Role.CHANNEL_APP, Role.SERVICE, Role.ADMIN})
# Front line serving one customer: relationship managers see only their own book.
FRONT_LINE = frozenset({Role.CHANNEL_APP, Role.RELATIONSHIP_MANAGER, Role.ADMIN})
CARE = frozenset({Role.RELATIONSHIP_MANAGER, Role.MARKETER, Role.ADMIN})
# Peer services following the change feed.
PLATFORM = frozenset({Role.ADMIN, Role.SERVICE})

_RULES: dict[str, frozenset[Role]] = {
    # campaigns and their lifecycle
    "CreateCampaign": MANAGERS,
    "GetCampaign": READERS,
    "ListCampaigns": READERS,
    "UpdateCampaign": MANAGERS,
    "DeleteCampaign": MANAGERS,
    "SubmitCampaign": MANAGERS,
    "ApproveCampaign": MANAGERS,
    "RejectCampaign": MANAGERS,
    "ScheduleCampaign": MANAGERS,
    "LaunchCampaign": MANAGERS,
    "PauseCampaign": MANAGERS,
    "ResumeCampaign": MANAGERS,
    "CompleteCampaign": MANAGERS,
    "CancelCampaign": MANAGERS,
    # offers
    "CreateOffer": MANAGERS,
    "GetOffer": READERS,
    "ListOffers": READERS,
    "UpdateOffer": MANAGERS,
    "DeleteOffer": MANAGERS,
    # audiences, dispatch, responses and results
    "BuildAudience": MANAGERS,
    "ListDispatches": READERS,
    "RecordResponse": RECORDERS | {Role.RELATIONSHIP_MANAGER},
    "RecordConversion": RECORDERS,
    "GetCampaignResults": READERS,
    # serving one customer
    "GetNextBestAction": FRONT_LINE,
    "ListContactHistory": FRONT_LINE | READERS,
    # event triggers
    "CreateTriggerRule": MANAGERS,
    "GetTriggerRule": READERS,
    "ListTriggerRules": READERS,
    "UpdateTriggerRule": MANAGERS,
    "DeleteTriggerRule": MANAGERS,
    # care tasks
    "CreateCareTask": CARE,
    "GetCareTask": CARE | {Role.AUDITOR},
    "ListCareTasks": CARE | {Role.AUDITOR},
    "UpdateCareTask": CARE,
    "DeleteCareTask": CARE,
    "CompleteCareTask": CARE,
    # loyalty
    "GetLoyaltyAccount": FRONT_LINE | READERS,
    "ListLoyaltyTransactions": FRONT_LINE | READERS,
    "AdjustLoyaltyPoints": MANAGERS,
    "ReverseLoyaltyTransaction": MANAGERS,
    "CreateReward": MANAGERS,
    "ListRewards": frozenset(Role),
    "RedeemReward": FRONT_LINE,
    # renewals
    "ListRenewals": frozenset({Role.RELATIONSHIP_MANAGER}) | READERS,
    # imported contact history and response propensity
    "ImportContactHistory": MANAGERS,
    "TrainPropensityModel": MANAGERS | {Role.ANALYST},
    "GetPropensityModel": READERS,
    # long-running operations
    "GetOperation": READERS,
    "ListOperations": READERS,
    "CancelOperation": MANAGERS,
    "WatchOperation": READERS,
    # the change feed
    "WatchChanges": PLATFORM,
}

ACCESS = {f"/{SERVICE.full_name}/{method}": roles for method, roles in _RULES.items()}
