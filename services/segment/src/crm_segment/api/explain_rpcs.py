"""ExplainSegmentMembership: proto -> arguments, one read-only unit of work, result -> proto."""

from __future__ import annotations

import grpc

from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.explain.model import Explanation
from crm_segment.explain.service import MembershipExplainer
from crm_segment.membership.rules import CUSTOMER_NAME
from crm_segment.segments.rules import SEGMENT_NAME
from crm_segment.segments.service import Segments
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.validation import Violations
from crmkit.values import set_timestamps


class ExplainRpcs:
    """Why a customer is or is not in a segment."""

    _db: Database
    _segments: Segments

    async def ExplainSegmentMembership(self, request: pb.ExplainSegmentMembershipRequest,
                                       context: grpc.aio.ServicerContext) -> pb.ExplainSegmentMembershipResponse:
        v = Violations()
        SEGMENT_NAME.check(request.segment, "segment", v, required=True)
        CUSTOMER_NAME.check(request.customer, "customer", v, required=True)
        v.raise_if_any()
        segment_id, customer_id = SEGMENT_NAME.id_in(request.segment), CUSTOMER_NAME.id_in(request.customer)
        assert segment_id is not None and customer_id is not None  # checked above
        async with self._db.unit_of_work(read_only=True) as uow:
            explanation = await MembershipExplainer(self._segments).explain(
                uow=uow, segment_id=segment_id, customer_id=customer_id, actor=current_principal())
        return _to_proto(explanation)


def _to_proto(explanation: Explanation) -> pb.ExplainSegmentMembershipResponse:
    message = pb.ExplainSegmentMembershipResponse(
        member=explanation.member,
        clauses=[pb.MembershipClause(text=c.text, held=pb.ClauseOutcome.ValueType(c.outcome), values=c.values)
                 for c in explanation.clauses])
    set_timestamps(message, features_as_of=explanation.features_as_of)
    return message
