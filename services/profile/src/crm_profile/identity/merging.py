"""Merge and unmerge orchestration.

Each customer field is chosen by its survivorship rule (`rules.rule_for`): the request's rule
for the field, else the request's `default_strategy` where the field's default yields to it,
else the field's own default from `rules.SURVIVORSHIP_DEFAULTS` (what the field means decides:
the earliest onboarding, the most recently confirmed personal and contact data, the most
complete KYC); the contract documents the same table on `MergeCustomersRequest`.

A merge is one unit of work over several sub-domains: the two customer rows, the consent ledger
(the source's records are served under the survivor; a MERGE-sourced opt-out is appended where
the survivor loses an opt-in or the joined ledger would allow more than the stricter customer
did), contact preferences (a do-not-contact flag is kept), relationships (moved, or set aside
where they would clash) and the merge row, which keeps the lineage and everything an unmerge
needs to put both customers back. Every change goes out on the change feed in the same
transaction.

Holdings move to the survivor (the same account recorded under both stays with the survivor's
copy), so the survivor's `ListHoldings` shows the whole relationship and the core-banking feeds
that keep updating those accounts name the survivor (a write naming the merged-away customer
gets FAILED_PRECONDITION with the survivor). The moves go out on the feed as the holding's
DELETED under the old name and CREATED under the new, and the merge row lists them so an
unmerge moves them back. The survivor's `closed_on` follows the holdings it ends up with.

Events, attributes and external ids stay stored under the merged-away customer: its
`merged_into` pointer lets their readers serve them under the survivor (events are history, not
state), and an unmerge has nothing to move back. Both customers' derived features are marked for
recomputation in the merge's transaction (and the unmerge's).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from google.protobuf.message import Message

from crm_profile.consents import rules as consent_rules
from crm_profile.consents.model import OPT_OUT, SOURCE_MERGE, ConsentEvidence, ConsentRecord, ContactPreferences
from crm_profile.consents.repository import (
    ConsentRepository,
    PreferenceRepository,
    preferences_from_json,
    preferences_to_json,
)
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import ACTIVE, MERGED, Customer, CustomerView
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.vault import PersonalDataVault
from crm_profile.features.writer import FeatureWriter
from crm_profile.history.model import ChangeSource
from crm_profile.history.service import FieldHistory
from crm_profile.holdings import rules as holding_rules
from crm_profile.holdings.model import CustomerRef, Holding, OpenState
from crm_profile.holdings.repository import HoldingRepository
from crm_profile.identity import rules
from crm_profile.identity.model import (
    AUTO_MERGE,
    CANDIDATE_MERGED,
    MATCHER,
    MERGE_ACTIVE,
    PENDING,
    REVIEW_CONSENT_CONFLICT,
    REVIEW_DO_NOT_CONTACT_CONFLICT,
    REVIEW_RISK_TOLERANCE_CONFLICT,
    Match,
    MatchCandidate,
    MatchRule,
    Merge,
    SurvivorshipRule,
)
from crm_profile.identity.repository import (
    CandidateRepository,
    MatchRepository,
    MergeRepository,
)
from crm_profile.identity.service import Identity
from crm_profile.relationships import rules as relationship_rules
from crm_profile.relationships.model import SPOUSE, Relationship
from crm_profile.relationships.repository import RelationshipRepository
from crm_profile.relationships.repository import from_json as relationship_from_json
from crm_profile.relationships.repository import to_json as relationship_to_json
from crm_profile.relationships.service import RELATIONSHIP_TYPE
from crm_profile.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal, Role
from crmkit.db import UnitOfWork
from crmkit.errors import Aborted, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import ChangeType, Outbox
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose

CONSENT_RECORD_TYPE = "crm.profile.v1.ConsentRecord"
# The principal of the background matcher's automatic merges.
MATCHER_PRINCIPAL = Principal(subject=MATCHER, roles=frozenset({Role.SERVICE}))

# (resource name, change type, payload, resource type); the type is given for deletions (no payload).
Event = tuple[str, int, Message | None, str]


class MergePayloads(Protocol):
    """Change-feed payloads (proto messages), supplied by the API layer."""

    def customer(self, customer: Customer) -> Message: ...
    def record(self, record: ConsentRecord) -> Message: ...
    def preferences(self, preferences: ContactPreferences) -> Message: ...
    def relationship(self, relationship: Relationship) -> Message: ...
    def merge(self, merge: Merge) -> Message: ...
    def holding(self, holding: Holding) -> Message: ...


@dataclasses.dataclass(frozen=True)
class Merged:
    customer: CustomerView
    merge: Merge


@dataclasses.dataclass(frozen=True)
class Unmerged:
    survivor: CustomerView
    restored: CustomerView
    merge: Merge


def _now() -> datetime:
    return datetime.now(UTC)


class Merges:
    """Merging customers, undoing merges, and the merge lineage."""

    def __init__(
        self, *, vault: PersonalDataVault, customers: CustomerRepository, outbox: Outbox,
        idempotency: IdempotencyKeys, audit: AuditWriter, page_tokens: PageTokens, payloads: MergePayloads,
        identity: Identity, history: FieldHistory | None = None, features: FeatureWriter | None = None,
    ) -> None:
        self._customers = customers
        self._outbox = outbox
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        self._payloads = payloads
        self._identity = identity
        self._history = history
        self._features = features
        self._matches = MatchRepository(vault)
        self._candidates = CandidateRepository()
        self._merges = MergeRepository(vault)
        self._ledger = ConsentRepository()
        self._preferences = PreferenceRepository()
        self._relationships = RelationshipRepository()
        self._holdings = HoldingRepository()

    async def auto_merge(self, uow: UnitOfWork, subject: Customer, found: Match, *,
                         rule: MatchRule) -> Merge | None:
        """Merge the pair without review (the matcher, AUTO_MERGE rules); None when it needs a steward
        (a review conflict, a pair once unmerged, an already handled pair), which then gets a candidate."""
        assert rule.action == AUTO_MERGE
        other = await self._customers.get(uow, found.customer_id)
        if other is None or other.state != ACTIVE:
            return None
        survivor, source = rules.older_first(subject, other)
        if await self._merges.pairs_undone(uow, survivor.customer_id, source.customer_id):
            return None
        if (await self._candidates.open_for(uow, survivor.customer_id, [source.customer_id])):
            return None
        locked: dict[str, Customer | None] = {}
        for customer_id in sorted((survivor.customer_id, source.customer_id)):
            locked[customer_id] = await self._customers.get(uow, customer_id, for_update=True)
        locked_survivor, locked_source = locked[survivor.customer_id], locked[source.customer_id]
        if (locked_survivor is None or locked_source is None or locked_survivor.state != ACTIVE
                or locked_source.state != ACTIVE):
            return None
        survivor, source = locked_survivor, locked_source
        if await self._identity.review_conflict(uow, survivor, source, now=_now()):
            return None
        _, merge = await self._merge_locked(
            uow, survivor=survivor, source=source, survivorship=rule.survivorship_rules, default_strategy=0,
            candidate=None, match_rule_id=rule.match_rule_id, actor=MATCHER_PRINCIPAL,
            purpose=Purpose("DATA_MANAGEMENT", f"auto-merge by {rule.name}"), write=True)
        return merge

    # --- merge and unmerge --------------------------------------------------------------------

    async def merge(
        self, *, uow: UnitOfWork, survivor_id: str, source_id: str, etag: str, source_etag: str,
        survivorship: Sequence[SurvivorshipRule], default_strategy: int, candidate_id: uuid.UUID | None,
        validate_only: bool, request_id: uuid.UUID | None, request: Message, purpose: Purpose, actor: Principal,
    ) -> Merged:
        rules.validate_merge_request(survivor_id=survivor_id, source_id=source_id, rules=survivorship,
                                     default_strategy=default_strategy)
        merge_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=None if validate_only else request_id, request=request,
            method="MergeCustomers", resource_name=f"customers/{survivor_id}/merges/{merge_id}",
            replay=lambda name: self._replay_merge(uow, uuid.UUID(name.rsplit("/", 1)[1]), actor))
        if replayed is not None:
            return replayed
        locked: dict[str, Customer | None] = {}
        for customer_id in sorted((survivor_id, source_id)):
            locked[customer_id] = await self._customers.get(uow, customer_id, for_update=True)
        survivor, source = locked[survivor_id], locked[source_id]
        if survivor is None:
            raise NotFound(f"customer {survivor_id} not found", reason="CUSTOMER_NOT_FOUND")
        if source is None:
            raise NotFound(f"customer {source_id} not found", reason="CUSTOMER_NOT_FOUND")
        for customer in (survivor, source):
            customer_rules.check_book(actor, customer)
            customer_rules.ensure_active(customer)
        if survivor.customer_type != source.customer_type:
            raise FailedPrecondition("only customers of the same type can be merged",
                                     reason="CUSTOMER_TYPE_MISMATCH")
        if etag and etag != survivor.etag:
            raise Aborted("the surviving customer changed since it was read", reason="ETAG_MISMATCH")
        if source_etag and source_etag != source.etag:
            raise Aborted("the source customer changed since it was read", reason="ETAG_MISMATCH")
        candidate = None
        if candidate_id is not None:
            candidate = await self._candidates.get(uow, candidate_id, for_update=True)
            if candidate is None:
                raise NotFound(f"match candidate {candidate_id} not found", reason="MATCH_CANDIDATE_NOT_FOUND")
            if set(candidate.customer_ids) != {survivor_id, source_id}:
                raise FailedPrecondition("the candidate names other customers", reason="MATCH_CANDIDATE_MISMATCH")
            if candidate.state != PENDING:
                raise FailedPrecondition("the candidate is not pending", reason="MATCH_CANDIDATE_NOT_PENDING")
        merged_customer, merge = await self._merge_locked(
            uow, survivor=survivor, source=source, survivorship=survivorship,
            default_strategy=default_strategy, candidate=candidate, match_rule_id="", actor=actor,
            purpose=purpose, write=not validate_only, merge_id=merge_id)
        return Merged(customer_rules.view_for(actor, merged_customer), merge)

    async def _replay_merge(self, uow: UnitOfWork, merge_id: uuid.UUID, actor: Principal) -> Merged:
        merge = await self._merges.get(uow, merge_id)
        if merge is None:
            raise NotFound("the merge made by this request no longer exists", reason="MERGE_NOT_FOUND")
        survivor = await self._customers.get(uow, merge.survivor_id)
        if survivor is None:
            raise NotFound(f"customer {merge.survivor_id} not found", reason="CUSTOMER_NOT_FOUND")
        return Merged(customer_rules.view_for(actor, survivor), merge)

    async def _merge_locked(
        self, uow: UnitOfWork, *, survivor: Customer, source: Customer,
        survivorship: Sequence[SurvivorshipRule], default_strategy: int, candidate: MatchCandidate | None,
        match_rule_id: str, actor: Principal, purpose: Purpose, write: bool, merge_id: uuid.UUID | None = None,
    ) -> tuple[Customer, Merge]:
        """The merge of two locked, live customers: computed always, written when `write`."""
        now = _now()
        merge_id = merge_id or uuid.uuid4()
        sid, src = survivor.customer_id, source.customer_id
        provenance = {c.customer_id: await self._merges.provenance(uow, c.customer_id) for c in (survivor, source)}
        survival = rules.survive(survivor, source, survivorship, default_strategy=default_strategy,
                                 provenance=provenance)
        # The merged relationship has ended only when none of the two customers' holdings is open.
        merged_customer = _with_relationship_end(
            survival.customer, await self._holdings.open_state(uow, sid, also=(src,)))
        ledger_survivor = await self._ledger.counting(uow, sid)
        ledger_source = await self._ledger.counting(uow, src)
        consents = consent_rules.reconcile(ledger_survivor, ledger_source, now=now)
        stored_prefs = await self._preferences.get(uow, sid, language=survivor.preferred_language, for_update=True)
        prefs_survivor = consent_rules.in_force(stored_prefs, today=now.date())
        prefs_source = consent_rules.in_force(
            await self._preferences.get(uow, src, language=source.preferred_language), today=now.date())
        prefs = consent_rules.reconcile_preferences(prefs_survivor, prefs_source, today=now.date())
        reasons = tuple(reason for reason, flagged in (
            (REVIEW_CONSENT_CONFLICT, bool(consents.conflicts)),
            (REVIEW_DO_NOT_CONTACT_CONFLICT, prefs.do_not_contact_conflict),
            (REVIEW_RISK_TOLERANCE_CONFLICT, survival.risk_tolerance_conflict)) if flagged)
        merge = Merge(merge_id=merge_id, survivor_id=sid, source_id=src, state=MERGE_ACTIVE,
                      field_lineage=survival.lineage, consent_conflicts=consents.conflicts, review_reasons=reasons,
                      match_candidate_id=candidate.candidate_id if candidate else None, match_rule_id=match_rule_id,
                      merged_by=actor.subject, merged_at=now)
        if not write:
            return merged_customer, merge

        events: list[Event] = []
        moved_holdings = await self._holdings.move(uow, from_customer=src, to_customer=sid)
        events += _holding_moves(moved_holdings, self._payloads)
        updated = await self._save_customer(uow, merged_customer)
        gone = await self._save_customer(uow, dataclasses.replace(source, state=MERGED,
                                                                          merged_into=survivor.name))
        events += [(c.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.customer(c), "") for c in (updated, gone)]
        if self._history is not None:
            await self._history.record(uow=uow, before=survivor, after=updated, actor=actor.subject,
                                       source=ChangeSource.MERGE, origin=source.name)

        moved = await self._ledger.move_all(uow, from_customer=src, to_customer=sid)
        joined = consent_rules.derive([*ledger_survivor, *ledger_source], now=now)
        opt_outs = [ConsentRecord(
            customer_id=sid, origin_customer_id=sid, purpose=purpose_, channel=channel, decision=OPT_OUT,
            evidence=ConsentEvidence(source=SOURCE_MERGE, source_reference=merge.name,
                                     effective_at=max(now, joined[(purpose_, channel)].effective_at),
                                     text_version="", recorded_by=actor.subject[:64]),
            merge_id=merge_id) for purpose_, channel in consents.opt_outs]
        appended = await self._ledger.append(uow, opt_outs, batch_id=merge_id, recorder=actor.subject)
        events += [(r.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.record(r), "") for r in moved]
        events += [(r.name, ChangeType.CHANGE_TYPE_CREATED, self._payloads.record(r), "") for r in appended]

        kept_prefs = dataclasses.replace(prefs.preferences, language=updated.preferred_language)
        prefs_after_version = None
        if kept_prefs != dataclasses.replace(prefs_survivor, language=updated.preferred_language):
            saved = await self._preferences.save(uow, kept_prefs)
            prefs_after_version = saved.version
            events.append((saved.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.preferences(saved), ""))

        plan = relationship_rules.plan_merge(await self._relationships.of_customer(uow, sid),
                                             await self._relationships.of_customer(uow, src), survivor_id=sid)
        parked = []
        for link in plan.park:
            mirror = await self._relationships.get(uow, _stored(link.mirror_id))
            parked.append([relationship_to_json(link), relationship_to_json(mirror) if mirror else None])
        await self._relationships.delete_pairs(uow, plan.park)
        events += [(name, ChangeType.CHANGE_TYPE_DELETED, None, RELATIONSHIP_TYPE)
                   for link in plan.park for name in (link.name, link.mirror_name)]
        reattached = await self._relationships.reattach(uow, [_stored(r.relationship_id) for r in plan.move],
                                                        from_customer=src, to_customer=sid)
        events += [(r.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.relationship(r), "") for r in reattached]

        undo: dict[str, Any] = {
            "survivor_before": self._merges.snapshot(survivor),
            "survivor_after": self._merges.snapshot(updated),
            "preferences_before": preferences_to_json(stored_prefs) if stored_prefs.version else None,
            "preferences_after_version": prefs_after_version,
            "moved_consents": [str(r.record_id) for r in moved],
            "moved_relationships": [str(r.relationship_id) for r in plan.move],
            "parked_relationships": parked,
            "moved_holdings": [after.holding_id for _, after in moved_holdings],
        }
        stored = await self._merges.insert(uow, dataclasses.replace(merge, undo=undo))
        if candidate is not None:
            await self._candidates.resolve(uow, candidate.candidate_id, state=CANDIDATE_MERGED, by=actor.subject,
                                           merge_name=stored.name)
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.merge", resource_name=name, purpose=purpose.purpose,
            justification=f"{purpose.justification} merge={stored.name}") for name in (survivor.name, source.name)])
        events.append((stored.name, ChangeType.CHANGE_TYPE_CREATED, self._payloads.merge(stored), ""))
        await self._publish(uow, events, actor)
        if self._features is not None:
            await self._features.mark(uow=uow, customer_ids=[sid, src])
        return updated, stored

    async def unmerge(self, *, uow: UnitOfWork, customer_id: str, etag: str, request_id: uuid.UUID | None,
                      request: Message, purpose: Purpose, actor: Principal) -> Unmerged:
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="UnmergeCustomers",
            resource_name=f"customers/{customer_id}",
            replay=lambda _: self._replay_unmerge(uow, customer_id, actor))
        if replayed is not None:
            return replayed
        merge = await self._merges.in_force_for_source(uow, customer_id)
        locked: dict[str, Customer | None] = {}
        for cid in sorted({customer_id, merge.survivor_id if merge else customer_id}):
            locked[cid] = await self._customers.get(uow, cid, for_update=True)
        source = locked[customer_id]
        if source is None:
            raise NotFound(f"customer {customer_id} not found", reason="CUSTOMER_NOT_FOUND")
        if merge is None or source.state != MERGED:
            raise FailedPrecondition("the customer is not merged into another", reason="NOT_MERGED")
        survivor = locked[merge.survivor_id]
        if survivor is None:
            raise NotFound(f"customer {merge.survivor_id} not found", reason="CUSTOMER_NOT_FOUND")
        if survivor.state == MERGED:
            raise FailedPrecondition(
                f"the survivor has since been merged into {survivor.merged_into}: unmerge that first",
                reason="SURVIVOR_MERGED", metadata={"survivor": survivor.merged_into})
        if etag and etag != survivor.etag:
            raise Aborted("the survivor changed since it was read", reason="ETAG_MISMATCH")
        restored_survivor, restored, undone = await self._unmerge_locked(
            uow, merge=merge, survivor=survivor, source=source, purpose=purpose, actor=actor)
        return Unmerged(customer_rules.view_for(actor, restored_survivor), customer_rules.view_for(actor, restored),
                        undone)

    async def _replay_unmerge(self, uow: UnitOfWork, customer_id: str, actor: Principal) -> Unmerged:
        merge = await self._merges.last_undone_for_source(uow, customer_id)
        if merge is None:
            raise NotFound("the merge undone by this request no longer exists", reason="MERGE_NOT_FOUND")
        survivor = await self._customers.get(uow, merge.survivor_id)
        restored = await self._customers.get(uow, customer_id)
        if survivor is None or restored is None:
            raise NotFound("a customer of this unmerge no longer exists", reason="CUSTOMER_NOT_FOUND")
        return Unmerged(customer_rules.view_for(actor, survivor), customer_rules.view_for(actor, restored), merge)

    async def _unmerge_locked(self, uow: UnitOfWork, *, merge: Merge, survivor: Customer, source: Customer,
                              purpose: Purpose, actor: Principal) -> tuple[Customer, Customer, Merge]:
        undo = merge.undo
        sid, src = survivor.customer_id, source.customer_id
        events: list[Event] = []
        before = self._merges.restore(survivor, undo["survivor_before"])
        after = self._merges.restore(survivor, undo["survivor_after"])
        # Holdings the merge moved go back first (those since deleted or re-created under the
        # source are skipped), so the survivor's relationship end is decided on what it keeps.
        moved_back_holdings = await self._holdings.move(
            uow, from_customer=sid, to_customer=src, holding_ids=undo.get("moved_holdings", []))
        events += _holding_moves(moved_back_holdings, self._payloads)
        wanted = _with_relationship_end(rules.restore_survivor(survivor, before=before, after=after),
                                        await self._holdings.open_state(uow, sid))
        restored_survivor = survivor
        if wanted != survivor:
            restored_survivor = await self._save_customer(uow, wanted)
            if self._history is not None:
                await self._history.record(uow=uow, before=survivor, after=restored_survivor, actor=actor.subject,
                                           source=ChangeSource.UNMERGE, origin=merge.name)
        restored = await self._save_customer(uow, dataclasses.replace(source, state=ACTIVE, merged_into=""))
        events += [(c.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.customer(c), "")
                   for c in (restored_survivor, restored)]

        merge_records = [r for r in await self._ledger.batch(uow, merge.merge_id) if r.merge_id == merge.merge_id]
        moved_back = await self._ledger.move_back(
            uow, [uuid.UUID(i) for i in undo["moved_consents"]],
            from_customer=sid, to_customer=src)
        assert merge.merged_at is not None
        since = await self._ledger.opt_outs_since(uow, sid, merge.merged_at)
        copies = await self._ledger.append(uow, [dataclasses.replace(
            r, customer_id=src, origin_customer_id=src, record_id=None) for r in since],
            batch_id=uuid.uuid4(), recorder=actor.subject)
        undone = await self._merges.mark_undone(uow, merge.merge_id, by=actor.subject)
        events += [(r.name, ChangeType.CHANGE_TYPE_DELETED, None, CONSENT_RECORD_TYPE) for r in merge_records]
        events += [(r.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.record(r), "") for r in moved_back]
        events += [(r.name, ChangeType.CHANGE_TYPE_CREATED, self._payloads.record(r), "") for r in copies]

        if undo.get("preferences_after_version") is not None:
            current = await self._preferences.get(uow, sid, language=restored_survivor.preferred_language,
                                                  for_update=True)
            if current.version == undo["preferences_after_version"]:
                before_prefs = undo.get("preferences_before")
                if before_prefs is None:
                    await self._preferences.delete(uow, sid)
                    back = ContactPreferences(customer_id=sid, language=restored_survivor.preferred_language)
                else:
                    back = await self._preferences.save(uow, preferences_from_json(
                        sid, before_prefs, language=restored_survivor.preferred_language))
                events.append((back.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.preferences(back), ""))

        moved_links = await self._relationships.reattach(
            uow, [uuid.UUID(i) for i in undo["moved_relationships"]],
            from_customer=sid, to_customer=src)
        events += [(r.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.relationship(r), "") for r in moved_links]
        for link_json, mirror_json in undo["parked_relationships"]:
            link = relationship_from_json(link_json)
            if mirror_json is None or await self._relationships.get(uow, _stored(link.relationship_id)):
                continue
            mirror = relationship_from_json(mirror_json)
            if await self._clashes(uow, link) or await self._clashes(uow, mirror):
                continue
            pair = await self._relationships.insert_pair(uow, link, mirror)
            events += [(r.name, ChangeType.CHANGE_TYPE_CREATED, self._payloads.relationship(r), "") for r in pair]

        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="customer.unmerge", resource_name=name, purpose=purpose.purpose,
            justification=f"{purpose.justification} merge={merge.name}") for name in (survivor.name, source.name)])
        events.append((undone.name, ChangeType.CHANGE_TYPE_UPDATED, self._payloads.merge(undone), ""))
        await self._publish(uow, events, actor)
        if self._features is not None:
            await self._features.mark(uow=uow, customer_ids=[sid, src])
        return restored_survivor, restored, undone

    async def _clashes(self, uow: UnitOfWork, link: Relationship) -> bool:
        if await self._relationships.find(uow, customer_id=link.customer_id,
                                          related_customer_id=link.related_customer_id, relationship_type=link.type):
            return True
        states = await self._matches.states(uow, [link.customer_id, link.related_customer_id])
        if any(state != ACTIVE for state, _ in states.values()) or len(states) < 2:
            return True
        return link.type == SPOUSE and await self._relationships.has_spouse(uow, [link.customer_id])

    async def list_merges(self, *, uow: UnitOfWork,
                          survivor_id: str | None, review_required: bool, state: int, page_size: int,
                          page_token: str, actor: Principal) -> Page[Merge]:
        if state not in (0, 1, 2):
            raise InvalidArgument([FieldViolation("state", "is not a known MergeState")])
        limit = clamp_page_size(page_size)
        query = {"survivor": survivor_id or "-", "review": review_required, "state": state}
        after = self._page_tokens.decode(page_token, query=query)
        if survivor_id is not None:
            found_customer = await self._customers.get(uow, survivor_id)
            if found_customer is None:
                raise NotFound(f"customer {survivor_id} not found", reason="CUSTOMER_NOT_FOUND")
            customer_rules.check_book(actor, found_customer)
        found = await self._merges.page(uow, survivor_id=survivor_id, review_required=review_required,
                                        state=state, after=tuple(after) if after else None, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=_merge_key, query=query)

    # --- shared -------------------------------------------------------------------------------

    async def _publish(self, uow: UnitOfWork, events: list[Event], actor: Principal) -> None:
        for resource_type in dict.fromkeys(e[3] for e in events):
            await self._outbox.append_many(uow, [e[:3] for e in events if e[3] == resource_type],
                                           actor=actor.subject, resource_type=resource_type or None)

    async def _save_customer(self, uow: UnitOfWork, customer: Customer) -> Customer:
        """Write the customer row; its attributes and external ids (stored apart) are unchanged."""
        saved = await self._customers.update(uow, customer)
        return dataclasses.replace(saved, attributes=customer.attributes, external_ids=customer.external_ids)


def _merge_key(merge: Merge) -> list[str]:
    """Where a merge list's next page starts: after this merge, in (merged_at, merge_id) order."""
    assert merge.merged_at is not None  # a listed merge is stored, and a stored one has its time
    return [merge.merged_at.isoformat(), str(merge.merge_id)]


def _stored(relationship_id: uuid.UUID | None) -> uuid.UUID:
    """The id of a relationship read from the table (only one not yet saved has none)."""
    assert relationship_id is not None
    return relationship_id


def _with_relationship_end(customer: Customer, holdings: OpenState) -> Customer:
    """The customer with the `closed_on` its holdings call for (`holdings.rules.relationship_end`)."""
    assert customer.onboarded_on is not None  # a stored customer has one (the column is NOT NULL)
    ref = CustomerRef(customer_id=customer.customer_id, relationship_manager_id=customer.relationship_manager_id,
                      onboarded_on=customer.onboarded_on, closed_on=customer.closed_on)
    changed, closed_on = holding_rules.relationship_end(ref, holdings)
    return dataclasses.replace(customer, closed_on=closed_on) if changed else customer


def _holding_moves(moves: Sequence[tuple[Holding, Holding]], payloads: MergePayloads) -> list[Event]:
    """A moved holding's name changes: DELETED under the old one, CREATED under the new."""
    events: list[Event] = []
    for before, after in moves:
        events.append((before.name, ChangeType.CHANGE_TYPE_DELETED, payloads.holding(before), ""))
        events.append((after.name, ChangeType.CHANGE_TYPE_CREATED, payloads.holding(after), ""))
    return events
