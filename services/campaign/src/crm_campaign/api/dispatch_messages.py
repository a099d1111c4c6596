"""Dispatch <-> crm.campaign.v1.Dispatch."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from crm.campaign.v1 import audience_pb2, campaign_pb2
from crm_campaign.dispatch.model import Dispatch, DispatchError, DispatchState
from crmkit.values import timestamp

DOMAIN = "campaign.crm"

# What each failure is, as a google.rpc code: a suppression is a precondition that failed, a
# provider that refused or vanished is unavailable.
_SUPPRESSED_CODE = code_pb2.FAILED_PRECONDITION
_FAILED_CODE = code_pb2.UNAVAILABLE


def error_to_proto(error: DispatchError, *, suppressed: bool) -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=dict(error.metadata)))
    return status_pb2.Status(code=_SUPPRESSED_CODE if suppressed else _FAILED_CODE, message=error.message,
                             details=[detail])


def to_proto(dispatch: Dispatch) -> audience_pb2.Dispatch:
    message = audience_pb2.Dispatch(
        name=dispatch.name, dispatch_id=dispatch.dispatch_id, customer=f"customers/{dispatch.customer_id}",
        offer=f"campaigns/{dispatch.campaign_id}/offers/{dispatch.offer_id}",
        channel=campaign_pb2.Channel.ValueType(dispatch.channel),
        channel_reason=audience_pb2.ChannelChoiceReason.ValueType(dispatch.channel_reason),
        state=audience_pb2.DispatchState.ValueType(dispatch.state),
        attempt_count=dispatch.attempt_count, provider_message_id=dispatch.provider_message_id,
        suppression_reason=audience_pb2.SuppressionReason.ValueType(dispatch.suppression_reason),
        propensity_model=dispatch.propensity_model,
    )
    if dispatch.last_error is not None:
        message.last_error.CopyFrom(error_to_proto(dispatch.last_error,
                                                   suppressed=dispatch.state is DispatchState.SUPPRESSED))
    for field, moment in (("not_before_time", dispatch.not_before_at), ("create_time", dispatch.created_at),
                          ("send_time", dispatch.sent_at), ("deliver_time", dispatch.delivered_at)):
        if moment is not None:
            getattr(message, field).CopyFrom(timestamp(moment))
    return message
