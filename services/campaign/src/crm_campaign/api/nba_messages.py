"""Next-best-action decisions -> GetNextBestActionResponse."""

from __future__ import annotations

from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import engagement_pb2
from crm_campaign.api import value_messages as values
from crm_campaign.nba.model import Action, Decision, Excluded


def action_to_proto(action: Action) -> engagement_pb2.NextBestAction:
    message = engagement_pb2.NextBestAction(
        rank=action.rank, kind=engagement_pb2.ACTION_KIND_OFFER,
        offer=f"campaigns/{action.campaign_id}/offers/{action.offer_id}", campaign=f"campaigns/{action.campaign_id}",
        product_code=action.product_code, headline=action.headline, template_id=action.template_id,
        score=action.score, propensity=action.propensity, propensity_model=action.propensity_model,
        reasons=[engagement_pb2.ActionReason(code=r.code, description=r.description, weight=r.weight)
                 for r in action.reasons])
    if action.expected_value is not None:
        message.expected_value.CopyFrom(values.money_to_proto(action.expected_value))
    return message


def excluded_to_proto(excluded: Excluded) -> engagement_pb2.ExcludedOffer:
    return engagement_pb2.ExcludedOffer(
        offer=f"campaigns/{excluded.campaign_id}/offers/{excluded.offer_id}",
        campaign=f"campaigns/{excluded.campaign_id}", product_code=excluded.product_code, reason=excluded.reason,
        description=excluded.description)


def decision_to_proto(decision: Decision) -> pb.GetNextBestActionResponse:
    return pb.GetNextBestActionResponse(
        actions=[action_to_proto(a) for a in decision.actions], decision_id=decision.decision_id,
        degraded=decision.degraded, degraded_reasons=list(decision.degraded_reasons),
        excluded=[excluded_to_proto(e) for e in decision.excluded])
