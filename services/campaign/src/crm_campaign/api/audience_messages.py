"""An audience build -> crm.campaign.v1.AudienceBuild (the operation's response)."""

from __future__ import annotations

from collections import Counter

from crm.campaign.v1 import audience_pb2, campaign_pb2
from crm_campaign.audience.builds import Build
from crm_campaign.audience.volumes import daily_volumes
from crmkit.validation import from_date
from crmkit.values import timestamp


def build_to_proto(build: Build) -> audience_pb2.AudienceBuild:
    result = build.result
    # Per channel, offer and day: the target, as the contract says (the control group is not contacted).
    target = build.target
    channels = Counter(e.channel for e in target)
    offers = Counter(e.offer_id for e in target)
    message = audience_pb2.AudienceBuild(
        campaign=f"campaigns/{build.campaign_id}", dry_run=build.dry_run, segment=build.segment,
        candidate_count=result.candidate_count,
        suppression_counts=[audience_pb2.SuppressionCount(reason=audience_pb2.SuppressionReason.ValueType(reason),
                                                          count=count)
                            for reason, count in result.counts().items()],
        eligible_count=len(result.eligible), control_count=build.control_count, target_count=build.target_count,
        channel_counts=[audience_pb2.ChannelCount(channel=campaign_pb2.Channel.ValueType(channel), count=count)
                        for channel, count in sorted(channels.items())],
        offer_counts=[audience_pb2.OfferCount(offer=f"campaigns/{build.campaign_id}/offers/{offer}", count=count)
                      for offer, count in sorted(offers.items())],
        collision_count=result.collisions,
        daily_volumes=[audience_pb2.DailyChannelVolume(date=from_date(day), channel=campaign_pb2.Channel.ValueType(
            channel), count=count) for day, channel, count in daily_volumes(
                target, built_at=build.built_at, time_zone=build.time_zone)])
    message.build_time.CopyFrom(timestamp(build.built_at))
    return message
