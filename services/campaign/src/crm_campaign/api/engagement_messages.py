"""OfferResponse / Conversion / CampaignResults <-> domain values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from crm.campaign.v1 import campaign_pb2, engagement_pb2
from crm_campaign.api import value_messages as values
from crm_campaign.campaigns.model import Money
from crm_campaign.engagement.model import Conversion, OfferResponse
from crm_campaign.results.rules import Results, Slice
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.resources import ResourceName
from crmkit.values import timestamp

CUSTOMER = ResourceName("customers/{customer_id}")
OFFER = ResourceName("campaigns/{campaign_id}/offers/{offer_id}")
DISPATCH = ResourceName("campaigns/{campaign_id}/dispatches/{dispatch_id}")
# Money carries nanos: amounts are rounded to them.
NANO = Decimal("0.000000001")


def _ids(name: ResourceName, value: str, field: str, bad: list[FieldViolation]) -> tuple[str, ...]:
    """The ids in `value` ("" for each when empty: required fields are judged by the rules)."""
    if not value:
        return ("",) * len(name.id_names)
    found = name.ids_in(value)
    if found is None:
        bad.append(FieldViolation(field, f"must be a resource name like {name.template}"))
        return ("",) * len(name.id_names)
    return found


def response_to_domain(message: engagement_pb2.OfferResponse) -> OfferResponse:
    bad: list[FieldViolation] = []
    (customer_id,) = _ids(CUSTOMER, message.customer, "response.customer", bad)
    campaign_id, offer_id = _ids(OFFER, message.offer, "response.offer", bad)
    dispatch_campaign, dispatch_id = _ids(DISPATCH, message.dispatch, "response.dispatch", bad)
    if dispatch_id and dispatch_campaign != campaign_id:
        bad.append(FieldViolation("response.dispatch", "must be a dispatch of the offer's campaign"))
    if bad:
        raise InvalidArgument(bad)
    return OfferResponse(
        campaign_id=campaign_id, response_id="", customer_id=customer_id, offer_id=offer_id,
        channel=message.channel, type=message.type,
        response_time=message.response_time.ToDatetime(tzinfo=UTC) if message.HasField("response_time") else None,
        dispatch_id=dispatch_id, decision_id=message.decision_id)


def response_to_proto(response: OfferResponse) -> engagement_pb2.OfferResponse:
    message = engagement_pb2.OfferResponse(
        name=response.name, customer=f"customers/{response.customer_id}",
        offer=f"campaigns/{response.campaign_id}/offers/{response.offer_id}",
        dispatch=(f"campaigns/{response.campaign_id}/dispatches/{response.dispatch_id}"
                  if response.dispatch_id else ""),
        decision_id=response.decision_id, channel=campaign_pb2.Channel.ValueType(response.channel),
        type=engagement_pb2.ResponseType.ValueType(response.type), recorder=response.recorder)
    if response.response_time is not None:
        message.response_time.CopyFrom(timestamp(response.response_time))
    if response.created_at is not None:
        message.create_time.CopyFrom(timestamp(response.created_at))
    return message


def conversion_to_domain(message: engagement_pb2.Conversion) -> Conversion:
    bad: list[FieldViolation] = []
    (customer_id,) = _ids(CUSTOMER, message.customer, "conversion.customer", bad)
    campaign_id, offer_id = _ids(OFFER, message.offer, "conversion.offer", bad)
    amount = (values.read_money(message.amount, "conversion.amount", bad) if message.HasField("amount") else None)
    value = (values.read_money(message.value, "conversion.value", bad) if message.HasField("value") else None)
    if bad:
        raise InvalidArgument(bad)
    return Conversion(
        customer_id=customer_id, source_reference=message.source_reference,
        conversion_time=(message.conversion_time.ToDatetime(tzinfo=UTC) if message.HasField("conversion_time")
                         else None),
        campaign_id=campaign_id, offer_id=offer_id, product_code=message.product_code, amount=amount, value=value)


def conversion_to_proto(conversion: Conversion) -> engagement_pb2.Conversion:
    message = engagement_pb2.Conversion(
        name=conversion.name, customer=f"customers/{conversion.customer_id}",
        offer=f"campaigns/{conversion.campaign_id}/offers/{conversion.offer_id}",
        product_code=conversion.product_code, control_group=conversion.control_group,
        dispatch=(f"campaigns/{conversion.campaign_id}/dispatches/{conversion.dispatch_id}"
                  if conversion.dispatch_id else ""),
        source_reference=conversion.source_reference, points_awarded=conversion.points_awarded)
    if conversion.amount is not None:
        message.amount.CopyFrom(values.money_to_proto(conversion.amount))
    if conversion.value is not None:
        message.value.CopyFrom(values.money_to_proto(conversion.value))
    if conversion.conversion_time is not None:
        message.conversion_time.CopyFrom(timestamp(conversion.conversion_time))
    if conversion.created_at is not None:
        message.create_time.CopyFrom(timestamp(conversion.created_at))
    return message


def results_to_proto(results: Results, *, campaign_id: str, currency: str, as_of: datetime
                     ) -> engagement_pb2.CampaignResults:
    def one(part: Slice) -> engagement_pb2.ResultsSlice:
        message = engagement_pb2.ResultsSlice(
            offer=f"campaigns/{campaign_id}/offers/{part.offer_id}" if part.offer_id else "",
            channel=campaign_pb2.Channel.ValueType(part.channel), segment=part.segment,
            target_count=part.target, control_count=part.control, contact_count=part.contacts,
            response_count=part.responses, target_conversion_count=part.target_conversions,
            control_conversion_count=part.control_conversions, target_conversion_rate=part.target_rate,
            control_conversion_rate=part.control_rate, uplift=part.uplift, roi=part.roi,
            revenue=values.money_to_proto(Money(currency, part.revenue.quantize(NANO))),
            incremental_revenue=values.money_to_proto(Money(currency, part.incremental_revenue.quantize(NANO))),
            cost=values.money_to_proto(Money(currency, part.cost.quantize(NANO))))
        if part.interval is not None:
            message.uplift_interval.CopyFrom(engagement_pb2.ConfidenceInterval(
                low=part.interval[0], high=part.interval[1], level=results.level))
        return message

    message = engagement_pb2.CampaignResults(
        campaign=f"campaigns/{campaign_id}", final=results.final, overall=one(results.overall),
        by_offer=[one(s) for s in results.by_offer], by_channel=[one(s) for s in results.by_channel],
        by_segment=[one(s) for s in results.by_segment])
    message.as_of.CopyFrom(timestamp(as_of))
    return message

