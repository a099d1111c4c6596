"""A read model rebuilt from its peer's List RPCs when the peer answers CURSOR_EXPIRED (its
retention purged events the model never applied; `crmkit.peer_feed.PeerFeedFollower.rebuild`).

The follower calls `start` when it stops on the expired cursor; a background task empties the
model, applies the peer's current state as change events at the feed's start position, then
follows the peer again from the oldest event it retains. While it runs the follower says
`<feed>_feed_expired` (health), and the customer model is not trusted: filing accepts unknown
customers unverified (customers/rules.py). A rebuild that fails (the peer down mid-way) is tried
again after a pause, until it succeeds or the service stops.
"""

from __future__ import annotations

import asyncio
import contextlib

from crmkit.logs import get_logger
from crmkit.peer_feed import Clear, PeerFeedFollower, Snapshot

log = get_logger("crm.feedback.customers")

RETRY_SECONDS = 5.0


class ModelRebuild:
    """Rebuilds one follower's model in the background; `follower` is wired after construction
    (the follower takes `start` as its `on_expired`)."""

    def __init__(self, *, clear: Clear, snapshot: Snapshot, retry_seconds: float = RETRY_SECONDS) -> None:
        self._clear = clear
        self._snapshot = snapshot
        self._retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.follower: PeerFeedFollower | None = None
        self.rebuilds = 0  # completed, for health and tests

    def start(self) -> None:
        """Begin a rebuild (called by the follower on CURSOR_EXPIRED); one at a time."""
        assert self.follower is not None, "wire the follower before it can expire"
        if self._closed or (self._task is not None and not self._task.done()):
            return
        log.warning("read_model_rebuild_started", feed=self.follower.feed.name)
        self._task = asyncio.create_task(self._run(self.follower), name=f"{self.follower.feed.name}-rebuild")

    async def _run(self, follower: PeerFeedFollower) -> None:
        while not self._closed:
            try:
                changed = await follower.rebuild(clear=self._clear, snapshot=self._snapshot)
            except Exception as error:  # the peer down or refusing mid-way: try again later
                log.error("read_model_rebuild_failed", feed=follower.feed.name, error=type(error).__name__)
                await asyncio.sleep(self._retry_seconds)
                continue
            self.rebuilds += 1
            log.info("read_model_rebuilt", feed=follower.feed.name, changed=changed)
            return

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def details(self) -> dict[str, object]:
        name = self.follower.feed.name if self.follower is not None else "model"
        return {f"{name}_model_rebuilding": self._task is not None and not self._task.done(),
                f"{name}_model_rebuilds": self.rebuilds}
