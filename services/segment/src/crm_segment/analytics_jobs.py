"""What clustering and association mining share when they start: the population segment must
exist, and at most `limit` analytics jobs run at once (each holds a worker process and a
population's values in memory)."""

from __future__ import annotations

import sqlalchemy as sa

from crm_segment.segments.repository import SegmentRepository
from crm_segment.tables import operation
from crmkit.db import UnitOfWork
from crmkit.errors import NotFound, ResourceExhausted
from crmkit.operations import UNFINISHED

CLUSTERING = "segment.clustering"
ASSOCIATION = "segment.association"
KINDS = (CLUSTERING, ASSOCIATION)


async def check_start(uow: UnitOfWork, *, segments: SegmentRepository, population_segment_id: str,
                      limit: int) -> None:
    """NOT_FOUND for an unknown population segment; RESOURCE_EXHAUSTED at the limit."""
    if population_segment_id and not await segments.exists(uow, population_segment_id):
        raise NotFound(f"segment {population_segment_id} not found", reason="SEGMENT_NOT_FOUND",
                       metadata={"segment_id": population_segment_id, "field": "population_segment"})
    running = await uow.scalar(sa.select(sa.func.count()).select_from(operation).where(
        operation.c.kind.in_(KINDS), operation.c.state.in_([int(s) for s in UNFINISHED])))
    if (running or 0) >= limit:
        raise ResourceExhausted(f"{running} analytics jobs are running, the limit is {limit}: try again when one "
                                "has finished", reason="ANALYTICS_JOBS_EXHAUSTED", metadata={"limit": str(limit)})
