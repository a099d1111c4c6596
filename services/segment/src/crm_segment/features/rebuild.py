"""The feature read model rebuilt from profile's List RPCs, as a `segment.rebuild_features`
operation, when profile answers CURSOR_EXPIRED (`crmkit.peer_feed`).

The follower calls `start` when it stops on the expired cursor; the operation clears the model,
applies profile's current state (`snapshot.profile_snapshot`) and then follows profile again from
the oldest event profile retains. Progress counts the snapshot events that changed the model.
While it runs, health says `profile_feed_expired` and `feature_model_needs_rebuild`; previews
and materialisations answer from the partial model (their `features_as_of` says how current).
Customers that left profile's population while the cursor was expired leave the model; segment
memberships move as the re-applied customers are re-evaluated (real-time segments) or at the next
materialisation.
"""

from __future__ import annotations

import functools
import uuid

from google.protobuf.message import Message

from crm.segment.v1 import read_model_pb2
from crm_segment.features import follower as profile_follower
from crm_segment.features.repository import FeatureRepository
from crm_segment.features.service import FeatureReadModel
from crm_segment.features.snapshot import profile_snapshot
from crmkit.db import Database
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation
from crmkit.peer_feed import PeerFeedFollower

log = get_logger("crm.segment.features")

KIND = "segment.rebuild_features"
REASON = "CURSOR_EXPIRED"


class FeatureRebuild:
    def __init__(self, *, db: Database, model: FeatureReadModel, repository: FeatureRepository,
                 operations: Operations, runner: OperationRunner) -> None:
        self._db = db
        self._model = model
        self._repository = repository
        self._operations = operations
        self._runner = runner
        self.follower: PeerFeedFollower | None = None

    async def start(self) -> uuid.UUID:
        """Create and launch the operation (called by the follower on CURSOR_EXPIRED)."""
        assert self.follower is not None, "wire the follower before it can expire"
        feed = self.follower.feed.name
        self._model.expired(feed_name=feed)
        operation_id = uuid.uuid4()
        async with self._db.unit_of_work() as uow:
            await self._operations.create(uow, kind=KIND, creator=profile_follower.SUBJECT, operation_id=operation_id,
                                          metadata=read_model_pb2.RebuildFeatureModelMetadata(feed=feed, reason=REASON))
        self._runner.launch(operation_id, functools.partial(self._run, self.follower))
        log.info("feature_model_rebuild_started", feed=feed, operation_id=str(operation_id))
        return operation_id

    async def _run(self, follower: PeerFeedFollower, run: RunningOperation) -> Message:
        await run.progress(stage="reading profile")

        async def progress(changed: int) -> None:
            await run.progress(done=changed, stage="reading profile")

        changed = await follower.rebuild(clear=self._repository.clear, snapshot=profile_snapshot, progress=progress)
        self._model.needs_rebuild = False
        log.info("feature_model_rebuilt", feed=follower.feed.name, changed=changed)
        return read_model_pb2.RebuildFeatureModelResponse(feed=follower.feed.name, changed_count=changed)
