"""Asking risk which offers a build's candidates may not be marketed (`CheckSuitabilityBatch`).

Offers at the lowest product risk level (R1) need no check. For every other offer risk is asked
per product, up to 1,000 customers a call, each call with a deadline. An answer other than
`SUITABILITY_OUTCOME_ALLOW` (a denial, or an in-person review, which marketing cannot give)
makes that offer unsuitable for that customer. When risk is down, slow past the deadline or not
configured, the answer for the whole build is "unknown" (`None`): the funnel then suppresses
every candidate who has no offer without a check as `SUITABILITY_UNKNOWN`, never a silent allow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import grpc

from crm.common.v1 import product_risk_pb2
from crm.risk.v1 import risk_service_pb2, risk_service_pb2_grpc, suitability_pb2
from crm_campaign.audience.funnel import NO_CHECK_RISK_LEVEL, Plan
from crmkit.channels import open_channel
from crmkit.logs import get_logger
from crmkit.peer_feed import ServiceToken
from crmkit.settings import ServiceSettings

log = get_logger("crm.campaign.suitability")

BATCH = 1000
SUBJECT = "service:campaign"
Verdict = dict[str, frozenset[str]] | None  # customer id -> unsuitable offer ids; None: unknown


class Suitability(Protocol):
    async def unsuitable(self, plan: Plan, customer_ids: Sequence[str]) -> Verdict: ...


def needs_check(plan: Plan) -> bool:
    return any(o.risk_level > NO_CHECK_RISK_LEVEL for o in plan.offers)


class NoRisk:
    """No risk service configured: every offer that needs a check is unknown."""

    async def unsuitable(self, plan: Plan, customer_ids: Sequence[str]) -> Verdict:
        return None if needs_check(plan) else {}


class RiskSuitability:
    def __init__(self, *, target: str, settings: ServiceSettings, deadline_seconds: float) -> None:
        self._deadline = deadline_seconds
        self._channel = open_channel(target, deadline_seconds=deadline_seconds,
                                     token_source=ServiceToken(settings, subject=SUBJECT),
                                     tls_ca_file=settings.tls_ca_file)
        self._stub = risk_service_pb2_grpc.RiskServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def unsuitable(self, plan: Plan, customer_ids: Sequence[str]) -> Verdict:
        found: dict[str, set[str]] = defaultdict(set)
        for offer in (o for o in plan.offers if o.risk_level > NO_CHECK_RISK_LEVEL):
            level = product_risk_pb2.ProductRiskLevel.ValueType(offer.risk_level)
            for start in range(0, len(customer_ids), BATCH):
                chunk = customer_ids[start:start + BATCH]
                try:
                    reply = await self._stub.CheckSuitabilityBatch(risk_service_pb2.CheckSuitabilityBatchRequest(
                        customers=[f"customers/{c}" for c in chunk], product_code=offer.product_code,
                        product_risk_level=level, context=f"campaigns/{plan.campaign_id}"),
                        timeout=self._deadline)
                except grpc.aio.AioRpcError as error:
                    log.warning("suitability_unknown", campaign_id=plan.campaign_id, offer_id=offer.offer_id,
                                code=error.code().name)
                    return None
                for customer_id, result in zip(chunk, reply.results, strict=False):
                    if result.outcome != suitability_pb2.SUITABILITY_OUTCOME_ALLOW:
                        found[customer_id].add(offer.offer_id)
                if len(reply.results) != len(chunk):  # an answer that does not match the question
                    log.warning("suitability_unknown", campaign_id=plan.campaign_id, offer_id=offer.offer_id,
                                code="SHORT_ANSWER")
                    return None
        return {customer_id: frozenset(offers) for customer_id, offers in found.items()}
