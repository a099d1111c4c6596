"""Dispatch orchestration: queueing what the audience build planned, listing, and the dispatcher
that hands queued dispatches to the channel adapters.

**No customer gets a message twice.** The dispatcher works in three steps, each its own
transaction: (1) claim a batch, recording the intent (SENDING, one more attempt, a lease), and
commit; (2) hand the batch to the adapters with each dispatch's deterministic id; (3) record
each outcome (SENT with the provider's id, or back to QUEUED with a backoff, or FAILED) and
commit. A crash between (1) and (3) leaves rows SENDING; once their lease lapses any dispatcher
claims them again and hands them over with the same id, which the adapter drops as a duplicate
(answering the first receipt). A crash before (1) commits sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from google.protobuf.message import Message

from crm_campaign.campaigns.model import Channel
from crm_campaign.campaigns.repository import CampaignRepository
from crm_campaign.campaigns.service import not_found
from crm_campaign.dispatch import rules
from crm_campaign.dispatch.adapters.base import OutboundMessage, Receipt, SendFailure
from crm_campaign.dispatch.channels import ChannelAdapters
from crm_campaign.dispatch.model import Dispatch, DispatchError, Planned
from crm_campaign.dispatch.repository import DispatchRepository
from crmkit.clock import Clock, utc_now
from crmkit.db import Database, UnitOfWork
from crmkit.logs import get_logger
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size

log = get_logger("crm.campaign.dispatch")

DISPATCH_TYPE = "crm.campaign.v1.Dispatch"
# The dispatcher's own principal on the feed.
DISPATCHER = "campaign-dispatcher"

FeedPayload = Callable[[Dispatch], Message]


class Dispatches:
    """The dispatch use cases run inside an RPC's (or a build's) unit of work."""

    def __init__(self, *, repository: DispatchRepository, campaigns: CampaignRepository, outbox: Outbox,
                 page_tokens: PageTokens, feed_payload: FeedPayload, clock: Clock = utc_now) -> None:
        self._repository = repository
        self._campaigns = campaigns
        self._outbox = outbox
        self._page_tokens = page_tokens
        self._feed_payload = feed_payload
        self._clock = clock

    async def queue(self, *, uow: UnitOfWork, campaign_id: str, planned: Sequence[Planned], actor: str) -> int:
        """Queue the targets and record the suppressed customers; what is already there stays.
        Each queued dispatch goes on the feed. Returns how many rows were new."""
        inserted = await self._repository.insert_planned(uow, campaign_id, planned, self._clock())
        queued = [d for d in inserted if not d.suppression_reason]
        await self._outbox.append_many(uow, [(d.name, ChangeType.CHANGE_TYPE_CREATED, self._feed_payload(d))
                                             for d in queued], actor=actor, resource_type=DISPATCH_TYPE)
        return len(inserted)

    async def displace(self, *, uow: UnitOfWork, displaced: Sequence[tuple[str, str]], actor: str) -> int:
        """Queued dispatches of other campaigns that lost arbitration: suppressed, naming the winner."""
        now = self._clock()
        by_winner: dict[str, list[str]] = {}
        for dispatch_id_, winner in displaced:
            by_winner.setdefault(winner, []).append(dispatch_id_)
        # One statement per winning offer (a campaign has a few), not one per displaced dispatch;
        # the events keep the order the build displaced them in.
        found = {d.dispatch_id: d for winner, ids in by_winner.items()
                 for d in await self._repository.displace(uow, ids, winner, now)}
        changed = [found.pop(dispatch_id_) for dispatch_id_, _ in displaced if dispatch_id_ in found]
        await self._outbox.append_many(uow, [(d.name, ChangeType.CHANGE_TYPE_UPDATED, self._feed_payload(d))
                                             for d in changed], actor=actor, resource_type=DISPATCH_TYPE)
        return len(changed)

    async def list(
        self, *, uow: UnitOfWork, campaign_id: str | None, customer_id: str, offer_id: str, channel: int, state: int,
        page_size: int, page_token: str,
    ) -> Page[Dispatch]:
        """`campaign_id` None lists every campaign's dispatches (then `customer_id` is required)."""
        rules.validate_list_filter(all_campaigns=campaign_id is None, customer_id=customer_id, channel=channel,
                                   state=state)
        if campaign_id is not None and await self._campaigns.get(uow, campaign_id) is None:
            raise not_found(campaign_id)
        limit = clamp_page_size(page_size)
        query = {"campaign": campaign_id or "-", "customer": customer_id, "offer": offer_id, "channel": channel,
                 "state": state}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._repository.page(
            uow, campaign_id=campaign_id, customer_id=customer_id, offer_id=offer_id, channel=channel, state=state,
            after=(datetime.fromisoformat(after[0]), after[1]) if after is not None else None, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=lambda d: [_iso(d.created_at), d.dispatch_id],
                                      query=query)


class Dispatcher:
    """The background worker: claim, send, record, until stopped. One per service process; several
    processes share the queue (claims skip each other's locked rows)."""

    def __init__(
        self, *, db: Database, repository: DispatchRepository, adapters: ChannelAdapters, outbox: Outbox,
        feed_payload: FeedPayload, batch_size: int = 200, lease: timedelta = timedelta(minutes=2),
        poll_seconds: float = 1.0, backoff_base: timedelta = timedelta(seconds=30),
        backoff_cap: timedelta = timedelta(minutes=30), clock: Clock = utc_now, rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._repository = repository
        self._adapters = adapters
        self._outbox = outbox
        self._feed_payload = feed_payload
        self._batch_size = batch_size
        self._lease = lease
        self._poll_seconds = poll_seconds
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not security)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def run_once(self) -> int:
        """One batch: claimed, handed over, recorded. Returns how many dispatches it handled."""
        async with self._db.unit_of_work() as uow:
            claimed = await self._repository.claim(uow, now=self._clock(), lease=self._lease, limit=self._batch_size)
        if not claimed:
            return 0
        outcomes = await self._hand_over(claimed)
        async with self._db.unit_of_work() as uow:
            await self._record(uow, claimed, outcomes)
        return len(claimed)

    async def drain(self) -> int:
        """Batches until nothing is due; returns the total handled (tests and benchmarks)."""
        total = 0
        while handled := await self.run_once():
            total += handled
        return total

    async def _hand_over(self, claimed: Sequence[Dispatch]) -> dict[str, Receipt | SendFailure]:
        by_adapter: dict[int, list[Dispatch]] = {}
        outcomes: dict[str, Receipt | SendFailure] = {}
        for dispatch in claimed:
            if self._adapters.adapter(dispatch.channel) is None:
                outcomes[dispatch.dispatch_id] = SendFailure(
                    "CHANNEL_NOT_CONFIGURED", f"no adapter sends {Channel(dispatch.channel).name}", transient=False)
            else:
                by_adapter.setdefault(dispatch.channel, []).append(dispatch)
        for channel, dispatches in by_adapter.items():
            adapter = self._adapters.adapter(channel)
            assert adapter is not None
            messages = [OutboundMessage(
                dispatch_id=d.dispatch_id, campaign_id=d.campaign_id, customer_id=d.customer_id, offer_id=d.offer_id,
                channel=Channel(d.channel).name, template_id=d.template_id, headline=d.headline) for d in dispatches]
            try:
                results = await adapter.send(messages)
            except Exception as exc:  # an adapter bug must not lose the batch: retried later
                log.exception("adapter_failed", channel=Channel(channel).name)
                results = [SendFailure("ADAPTER_ERROR", type(exc).__name__, transient=True)] * len(messages)
            outcomes.update(zip((d.dispatch_id for d in dispatches), results, strict=True))
        return outcomes

    async def _record(self, uow: UnitOfWork, claimed: Sequence[Dispatch],
                      outcomes: dict[str, Receipt | SendFailure]) -> None:
        now = self._clock()
        sent = [(d.dispatch_id, o.provider_message_id) for d in claimed
                if isinstance(o := outcomes[d.dispatch_id], Receipt)]
        changed = await self._repository.mark_sent(uow, sent, now)
        for dispatch in claimed:
            outcome = outcomes[dispatch.dispatch_id]
            if isinstance(outcome, SendFailure):
                when = rules.retry_at(outcome, attempt_count=dispatch.attempt_count, now=now,
                                      base=self._backoff_base, cap=self._backoff_cap, rng=self._rng)
                failed = await self._repository.mark_failed(
                    uow, dispatch.dispatch_id, DispatchError(outcome.reason, outcome.message), retry_at=when, now=now)
                if failed is not None and when is None:
                    changed.append(failed)
        await self._outbox.append_many(uow, [(d.name, ChangeType.CHANGE_TYPE_UPDATED, self._feed_payload(d))
                                             for d in changed], actor=DISPATCHER, resource_type=DISPATCH_TYPE)
        log.info("dispatch_batch", claimed=len(claimed), sent=len(sent),
                 failed=sum(isinstance(o, SendFailure) for o in outcomes.values()))

    # --- the background loop ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="campaign-dispatcher")

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                handled = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher_batch_failed")
                handled = 0
            if not handled:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._adapters.close()


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""
