"""The background matcher: applies the enabled match rules to every created or changed customer.

It follows the service's own change feed (the outbox) from a cursor kept in `matcher_state`
(the feed's own `"<xid>.<sequence>"` cursor, read with the kit's `read_visible`: the outbox is
ordered by transaction id, then sequence, and only what no running transaction can precede is
read, so a slow transaction committing an early-numbered change is not passed over), so it sees
every customer change exactly once whichever path made it (API, bulk import, merge), resumes
after a restart, and runs on one replica at a time (the cursor row is locked
with SKIP LOCKED; other replicas skip the round). For each changed customer it refreshes the
name key fuzzy rules block on (in batches, and only while a fuzzy rule exists: a deployment
without rules pays nothing per customer), then files a `MatchCandidate` per match, or merges at
once for AUTO_MERGE rules when the merge needs no review. A new rule applies to customers
changed after it exists; `FindMatches` applies it to anyone on demand.

Who opens the transaction (crmkit.db's rule, for work no RPC starts): the matcher itself, one unit
of work per batch (`run_once`), as the kit's FeedConsumer does; the identity and merge functions it
calls run in that unit of work and never open or commit one, so a batch's cursor move, name keys,
candidates and merges commit together or not at all.

A merge appends to the outbox, whose ordering lock is held until commit, so a round commits
right after an automatic merge instead of carrying the lock through the rest of its batch.

Idle, it waits for a commit of this process that appended to the outbox (`FEED_COMMITTED`), or
`poll_seconds` for what other replicas and raw bulk appends commit: a service under read load
runs no matcher round at all (each costs four statements).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from crm_profile.customers.model import ACTIVE
from crm_profile.customers.repository import CustomerRepository
from crm_profile.identity.merging import Merges
from crm_profile.identity.model import AUTO_MERGE, MatchRule
from crm_profile.identity.repository import MatcherPosition, MatcherStateRepository, MatchRuleRepository
from crm_profile.identity.rules import MAX_POOL
from crm_profile.identity.service import Identity
from crmkit.db import Database, UnitOfWork
from crmkit.errors import Unavailable
from crmkit.logs import get_logger
from crmkit.outbox import FEED_COMMITTED, ChangeType, encode_cursor

log = get_logger("crm.profile.matcher")

CUSTOMER_TYPE = "crm.profile.v1.Customer"
BATCH = 500


class Matcher:
    def __init__(self, *, db: Database, identity: Identity, merges: Merges, customers: CustomerRepository,
                 poll_seconds: float, batch_size: int = BATCH) -> None:
        self._db = db
        self._identity = identity
        self._merges = merges
        self._customers = customers
        self._rules = MatchRuleRepository()
        self._state = MatcherStateRepository()
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="identity-matcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        batch = self._batch_size
        while True:
            committed = FEED_COMMITTED.armed()
            try:
                progressed = await self.run_once(batch_size=batch)
                batch = self._batch_size
            except asyncio.CancelledError:
                raise
            except Unavailable:
                # The database is down or out of connections: no event is at fault, so none is
                # skipped; the round is retried after the idle wait.
                log.warning("matcher_database_unavailable", batch=batch)
                progressed = False
            except Exception as exc:
                # A batch that fails is retried one event at a time; an event that fails alone
                # (and not for want of a database) is skipped and logged, so one bad record
                # cannot stop matching for everyone.
                log.error("matcher_round_failed", error_type=type(exc).__name__, batch=batch)
                if batch == 1:
                    await self._skip_one()
                batch = 1
                progressed = False
            if not progressed:
                await FEED_COMMITTED.wait(committed, timeout=self._poll_seconds)

    async def run_once(self, *, batch_size: int | None = None) -> bool:
        """One round over the feed; True when it did something (there may be more)."""
        limit = batch_size or self._batch_size
        async with self._db.unit_of_work() as uow:
            position = await self._state.claim(uow)
            if position is None:
                return False
            keys_wanted = await self._rules.any_fuzzy(uow)
            rules = await self._rules.in_force(uow)
            if not keys_wanted and not rules:
                # Nothing to keep or apply: skip to the feed's tail without reading it (a bulk
                # load of a million customers costs the matcher one query, not a million rows).
                tail = await self._state.tail(uow)
                if tail > position.cursor:
                    await self._state.save(uow, MatcherPosition(tail, False, ""))
                return False
            if keys_wanted and not position.name_keys_ready:
                after = await self._identity.refresh_name_keys(uow, after=position.name_keys_after, limit=limit)
                await self._state.save(uow, dataclasses.replace(
                    position, name_keys_ready=after is None, name_keys_after=after or ""))
                return True
            changes, last = await self._state.customer_changes(uow, after=position.cursor, limit=limit,
                                                               resource_type=CUSTOMER_TYPE)
            if last == position.cursor:
                return False
            # Keys that lapse while no fuzzy rule exists are rebuilt by a backfill when one appears.
            position = dataclasses.replace(position, cursor=last, name_keys_ready=keys_wanted,
                                           name_keys_after="" if not keys_wanted else position.name_keys_after)
            changed = list(dict.fromkeys(name.removeprefix("customers/") for _, name, _ in changes))
            if keys_wanted:
                await self._identity.refresh_name_keys(uow, customer_ids=changed)
            if rules:
                for event_cursor, name, change_type in changes:
                    if change_type == ChangeType.CHANGE_TYPE_DELETED:
                        continue
                    if await self._match_one(uow, name.removeprefix("customers/"), rules):
                        await self._state.save(uow, dataclasses.replace(position, cursor=event_cursor))
                        return True
            await self._state.save(uow, position)
        return True

    async def _match_one(self, uow: UnitOfWork, customer_id: str, rules: list[MatchRule]) -> bool:
        """Match one changed customer; True when it merged (the round then commits)."""
        customer = await self._customers.get(uow, customer_id)
        if customer is None or customer.state != ACTIVE:
            return False
        by_id = {r.match_rule_id: r for r in rules}
        for found in await self._identity.match(uow, customer, rules, limit=MAX_POOL):
            rule = by_id[found.match_rule_id]
            automatic = rule.action == AUTO_MERGE and (rule.fuzzy is None
                                                       or found.score >= rule.fuzzy.auto_merge_threshold)
            if automatic and await self._merges.auto_merge(uow, customer, found, rule=rule) is not None:
                return True
            await self._identity.file_candidate(uow, customer, found, rule=rule)
        return False

    async def _skip_one(self) -> None:
        async with self._db.unit_of_work() as uow:
            position = await self._state.claim(uow)
            if position is None:
                return
            _, last = await self._state.customer_changes(uow, after=position.cursor, limit=1,
                                                         resource_type=CUSTOMER_TYPE)
            log.error("matcher_event_skipped", cursor=encode_cursor(last))
            await self._state.save(uow, dataclasses.replace(position, cursor=last))
