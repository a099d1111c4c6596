"""Offer protos <-> domain model. Nothing else: no rules, no I/O."""

from __future__ import annotations

from crm.campaign.v1 import campaign_pb2
from crm.common.v1 import product_risk_pb2
from crm_campaign.api import value_messages as values
from crm_campaign.offers.model import ChannelContent, Offer, OfferEligibility
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.values import set_timestamps


def to_domain(message: campaign_pb2.Offer, *, campaign_id: str, offer_id: str | None = None) -> Offer:
    """Domain offer from a request; INVALID_ARGUMENT for values that cannot even be read."""
    bad: list[FieldViolation] = []
    offer = Offer(
        campaign_id=campaign_id,
        offer_id=offer_id if offer_id is not None else message.offer_id,
        display_name=message.display_name,
        description=message.description,
        product_code=message.product_code,
        product_risk_level=message.product_risk_level,
        priority=message.priority,
        expected_value=(values.read_money(message.expected_value, "offer.expected_value", bad)
                        if message.HasField("expected_value") else None),
        eligibility=OfferEligibility(segment=message.eligibility.segment,
                                     excluded_product_codes=tuple(message.eligibility.excluded_product_codes)),
        channels=tuple(message.channels),
        contents=tuple(ChannelContent(channel=c.channel, template_id=c.template_id, headline=c.headline)
                       for c in message.contents),
        valid_period=values.read_interval(message.valid_period),
        conversion_points=message.conversion_points,
        offer_type=message.offer_type,
    )
    if bad:
        raise InvalidArgument(bad)
    return offer


def to_proto(offer: Offer) -> campaign_pb2.Offer:
    message = campaign_pb2.Offer(
        name=offer.name, offer_id=offer.offer_id, etag=offer.etag, display_name=offer.display_name,
        description=offer.description, product_code=offer.product_code,
        product_risk_level=product_risk_pb2.ProductRiskLevel.ValueType(offer.product_risk_level),
        priority=offer.priority, conversion_points=offer.conversion_points, offer_type=offer.offer_type,
        channels=[campaign_pb2.Channel.ValueType(c) for c in offer.channels],
        contents=[campaign_pb2.ChannelContent(channel=campaign_pb2.Channel.ValueType(c.channel),
                                              template_id=c.template_id, headline=c.headline)
                  for c in offer.contents],
    )
    if offer.expected_value is not None:
        message.expected_value.CopyFrom(values.money_to_proto(offer.expected_value))
    if offer.eligibility.segment or offer.eligibility.excluded_product_codes:
        message.eligibility.segment = offer.eligibility.segment
        message.eligibility.excluded_product_codes.extend(offer.eligibility.excluded_product_codes)
    if offer.valid_period.start_time is not None or offer.valid_period.end_time is not None:
        message.valid_period.CopyFrom(values.interval_to_proto(offer.valid_period))
    set_timestamps(message, create_time=offer.created_at, update_time=offer.updated_at)
    return message
