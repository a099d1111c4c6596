"""Explain one customer's membership of one segment against the read model as it is now: the
customer's values are read with the catalogue's SQL expressions (the real-time read), so the
closures see what materialisation's SQL sees."""

from __future__ import annotations

import asyncio

from crm_segment import cel
from crm_segment.explain import rules
from crm_segment.explain.model import Explanation
from crm_segment.realtime import repository as values
from crm_segment.segments.service import Segments
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound, PermissionDenied


class MembershipExplainer:
    def __init__(self, segments: Segments) -> None:
        self._segments = segments

    async def explain(self, *, uow: UnitOfWork, segment_id: str, customer_id: str, actor: Principal
                      ) -> Explanation:
        segment = await self._segments.get(uow=uow, segment_id=segment_id)
        features = await values.features_in(uow, customer_id)
        if features is None:
            raise NotFound(f"customer {customer_id} is not in the read model", reason="CUSTOMER_NOT_FOUND",
                           metadata={"customer_id": customer_id})
        if actor.is_relationship_manager_only and features.get("relationship_manager_id") != actor.subject:
            raise PermissionDenied("the customer is outside your book", reason="OUTSIDE_BOOK")
        try:
            # Parsing is CPU work (up to a quarter of a second for the longest rule): off the loop.
            return await asyncio.to_thread(rules.explain, segment.rule, features)
        except cel.InvalidRule as error:
            raise FailedPrecondition(f"the segment's rule no longer checks: {error}", reason="RULE_INVALID",
                                     metadata={"segment_id": segment_id}) from None
