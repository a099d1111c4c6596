"""Retention's use cases run in the unit of work they are handed (crmkit.db's rule): a policy update
and the start of a purge made in a transaction that rolls back leave no version, audit record,
operation or idempotency key behind, and the purge is not launched."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from crm.profile.v1 import retention_pb2
from crm_profile import tables
from crm_profile.api import privacy_messages
from crm_profile.privacy.retention.model import PolicyChanges
from crm_profile.privacy.retention.repository import RetentionRepository
from crm_profile.privacy.retention.service import PurgeMessages, Retention
from crm_profile.wiring import feed_payload
from crmkit.auth import Principal, Role
from crmkit.idempotency import IdempotencyKeys
from crmkit.operations import Operations
from crmkit.pagination import PageTokens
from crmkit.testing import row_counts

ADMIN = Principal(subject="retention-uow", roles=frozenset({Role.ADMIN}))
TABLES = ("operation", "idempotency_key", "audit_record")


class Abandoned(Exception):
    """Raised inside the unit of work to roll it back."""


class NeverLaunched:
    def launch(self, *args: Any) -> None:
        raise AssertionError("a purge was launched from a unit of work that rolled back")


def retention(runtime: Any) -> Retention:
    tokens = PageTokens(b"k" * 32)
    return Retention(
        db=runtime.db, repository=RetentionRepository({}), erasure=None, eraser=None, customers=None,  # type: ignore[arg-type]
        operations=Operations(runtime.db, tables.operation, tokens), runner=NeverLaunched(),  # type: ignore[arg-type]
        idempotency=IdempotencyKeys(tables.idempotency_key), outbox=None, feed=None,  # type: ignore[arg-type]
        feed_retention=timedelta(days=30), page_tokens=tokens,
        messages=PurgeMessages(privacy_messages.purge_metadata, privacy_messages.purge_result, feed_payload),
        partitions_dropped=lambda: None, schedule_every=None)


async def behaviour_version(runtime: Any) -> int:
    async with runtime.db.unit_of_work(read_only=True) as uow:
        return int(await uow.scalar(sa.text("SELECT version FROM retention_policy WHERE data_class = 7")))


async def test_a_policy_update_and_a_purge_start_in_a_rolled_back_unit_of_work_leave_nothing(
        isolated_profile: tuple[Any, Any]) -> None:
    _, runtime = isolated_profile
    service = retention(runtime)
    version, counts = await behaviour_version(runtime), await row_counts(isolated_profile, *TABLES)
    request = retention_pb2.RunRetentionPurgeRequest(request_id=str(uuid.uuid4()))
    with pytest.raises(Abandoned):
        async with runtime.db.unit_of_work() as uow:
            updated = await service.update(uow=uow, slug="behaviour", changes=PolicyChanges(legal_basis="uow test"),
                                           paths=["legal_basis"], etag="", actor=ADMIN)
            assert updated.version == version + 1  # seen inside the transaction
            started = await service.start_purge(uow=uow, data_classes=[7], validate_only=True,
                                                request_id=uuid.UUID(request.request_id), request=request, actor=ADMIN)
            assert started.operation.name.startswith("operations/")
            raise Abandoned
    assert await behaviour_version(runtime) == version
    assert await row_counts(isolated_profile, *TABLES) == counts
