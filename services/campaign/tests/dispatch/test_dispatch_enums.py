"""The dispatch, audience and engagement enums mirror the contract."""

from __future__ import annotations

from enum import IntEnum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from crm.campaign.v1 import audience_pb2, engagement_pb2
from crm_campaign.dispatch.model import ChannelChoiceReason, DispatchState, SuppressionReason
from crm_campaign.engagement.model import ResponseType
from crmkit.testing import assert_enum_mirrors


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (DispatchState, audience_pb2.DispatchState, "DISPATCH_STATE_"),
    (SuppressionReason, audience_pb2.SuppressionReason, "SUPPRESSION_REASON_"),
    (ChannelChoiceReason, audience_pb2.ChannelChoiceReason, "CHANNEL_CHOICE_REASON_"),
    (ResponseType, engagement_pb2.ResponseType, "RESPONSE_TYPE_"),
])
def test_domain_enums_mirror_the_contract(domain: type[IntEnum], proto: EnumTypeWrapper, prefix: str) -> None:
    assert_enum_mirrors(domain, proto, prefix=prefix)
