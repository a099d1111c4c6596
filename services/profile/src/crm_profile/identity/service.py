"""Identity-resolution orchestration: match rules, matching (on demand and for the background
matcher), candidate review and lookup by identifier. Merges live in `merging.py`."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message

from crm_profile.consents import rules as consent_rules
from crm_profile.consents.repository import (
    ConsentRepository,
    PreferenceRepository,
)
from crm_profile.consents.service import load_customer
from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import ACTIVE, MERGED, Customer, CustomerView
from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.vault import PersonalDataVault
from crm_profile.identity import rules
from crm_profile.identity.model import (
    CANDIDATE_MERGED,
    DISMISSED,
    KEY_EXTERNAL_ID,
    PENDING,
    Identifier,
    Match,
    MatchCandidate,
    MatchRule,
)
from crm_profile.identity.repository import (
    CandidateRepository,
    MatchRepository,
    MatchRuleRepository,
)
from crm_profile.tables import audit_record
from crmkit.audit import AuditEntry, AuditWriter
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.locking import load_for_update
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose

MAX_LOOKUP_RESULTS = 10
MAX_MERGE_CHAIN = 16


def _candidate_key(candidate: MatchCandidate) -> list[object]:
    """Where a candidate list's next page starts: after this one, in (score, created_at, id) order."""
    assert candidate.created_at is not None  # a listed candidate is stored, and a stored one has its time
    return [candidate.score, candidate.created_at.isoformat(), str(candidate.candidate_id)]


def _now() -> datetime:
    return datetime.now(UTC)


class Identity:
    """Match rules, matching, candidate review and lookup."""

    def __init__(
        self, *, vault: PersonalDataVault, customers: CustomerRepository,
        idempotency: IdempotencyKeys, audit: AuditWriter, page_tokens: PageTokens,
    ) -> None:
        self._vault = vault
        self._customers = customers
        self._idempotency = idempotency
        self._audit = audit
        self._page_tokens = page_tokens
        self._rules = MatchRuleRepository()
        self._matches = MatchRepository(vault)
        self._candidates = CandidateRepository()
        self._ledger = ConsentRepository()
        self._preferences = PreferenceRepository()

    # --- match rules ------------------------------------------------------------------------

    async def create_rule(self, *, uow: UnitOfWork, rule: MatchRule, request_id: uuid.UUID | None,
                          request: Message, actor: Principal) -> MatchRule:
        rules.validate_rule(rule).raise_if_any()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="CreateMatchRule",
            resource_name=rule.name, replay=lambda name: self._replay_rule(uow=uow, name=name))
        if replayed is not None:
            return replayed
        created = await self._rules.insert(uow, rule)
        if created is None:
            raise AlreadyExists(f"match rule {rule.match_rule_id} already exists", reason="MATCH_RULE_EXISTS")
        await self._audit_change(uow, actor, "match_rule.create", created.name, Purpose("DATA_MANAGEMENT"))
        return created

    async def get_rule(self, *, uow: UnitOfWork, match_rule_id: str) -> MatchRule:
        return await self._rule_or_404(uow, match_rule_id)

    async def _rule_or_404(self, uow: UnitOfWork, match_rule_id: str) -> MatchRule:
        rule = await self._rules.get(uow, match_rule_id)
        if rule is None:
            raise _rule_not_found(match_rule_id)
        return rule

    async def _locked_rule(self, *, uow: UnitOfWork, match_rule_id: str, etag: str) -> MatchRule:
        return await load_for_update(self._rules.get(uow, match_rule_id, for_update=True), etag=etag,
                                     not_found=lambda: _rule_not_found(match_rule_id))

    async def _replay_rule(self, *, uow: UnitOfWork, name: str) -> MatchRule:
        """The rule an earlier CreateMatchRule with the same request_id created."""
        existing = await self._rules.get(uow, name.removeprefix("matchRules/"))
        if existing is None:
            raise NotFound("the match rule created by this request no longer exists", reason="MATCH_RULE_NOT_FOUND")
        return existing

    async def list_rules(self, *, uow: UnitOfWork, page_size: int, page_token: str) -> Page[MatchRule]:
        limit = clamp_page_size(page_size)
        after = self._page_tokens.decode(page_token, query={"list": "matchRules"})
        found = await self._rules.page(uow, after=tuple(after) if after else None, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=lambda r: [r.priority, r.match_rule_id],
                                      query={"list": "matchRules"})

    async def update_rule(self, *, uow: UnitOfWork,
                          changes: MatchRule, paths: Sequence[str], etag: str, actor: Principal) -> MatchRule:
        rules.check_rule_mask(paths)
        current = await self._locked_rule(uow=uow, match_rule_id=changes.match_rule_id, etag=etag)
        updated = rules.apply_rule_update(current, changes, paths)
        rules.validate_rule(updated).raise_if_any()
        saved = await self._rules.update(uow, updated)
        await self._audit_change(uow, actor, "match_rule.update", saved.name, Purpose("DATA_MANAGEMENT"))
        return saved

    async def delete_rule(self, *, uow: UnitOfWork, match_rule_id: str, etag: str, actor: Principal) -> None:
        current = await self._locked_rule(uow=uow, match_rule_id=match_rule_id, etag=etag)
        await self._rules.delete(uow, match_rule_id)
        await self._audit_change(uow, actor, "match_rule.delete", current.name, Purpose("DATA_MANAGEMENT"))

    # --- matching ---------------------------------------------------------------------------

    def name_key(self, customer: Customer) -> bytes | None:
        key = rules.name_key(customer.full_name)
        return self._vault.index_of(key, kind="name_key") if key else None

    async def refresh_name_keys(self, uow: UnitOfWork, *, customer_ids: Sequence[str] | None = None,
                                after: str | None = None, limit: int = 0) -> str | None:
        """Make the fuzzy blocking keys of some customers current (the matcher): the given ones, or
        a page after `after` in id order (the backfill), whose last id it returns (None at the end)."""
        found = await self._matches.names(uow, customer_ids=customer_ids, after=after, limit=limit)
        keys = {}
        for customer_id, state, full_name in found:
            key = rules.name_key(full_name) if state == ACTIVE else ""
            if key:
                keys[customer_id] = self._vault.index_of(key, kind="name_key")
        seen = {customer_id for customer_id, _, _ in found}
        gone = [cid for cid in (customer_ids if customer_ids is not None else seen) if cid not in keys]
        await self._matches.drop_name_keys(uow, gone)
        await self._matches.save_name_keys(uow, keys)
        if customer_ids is None:
            return found[-1][0] if len(found) == limit else None
        return None

    async def match(self, uow: UnitOfWork, subject: Customer, match_rules: Sequence[MatchRule], *,
                    limit: int) -> list[Match]:
        """Customers the rules pair with the subject, each credited to the first rule that matched,
        best first."""
        found: dict[str, Match] = {}
        pool = None
        comparable = rules.Comparable.of(subject)
        for rule in match_rules:
            if rule.exact_key is not None:
                if rule.exact_key == KEY_EXTERNAL_ID:
                    ids = await self._matches.by_external_ids(uow, subject, subject.external_ids,
                                                              limit=rules.MAX_POOL)
                else:
                    ids = await self._matches.exact(uow, subject, rule.exact_key, limit=rules.MAX_POOL)
                for customer_id in ids:
                    found.setdefault(customer_id, Match(customer_id, rule.match_rule_id, 1.0))
                continue
            assert rule.fuzzy is not None
            if pool is None:
                dates = rules.date_typo_variants(subject.birth_date) if subject.birth_date else set()
                pool = await self._matches.pool(uow, subject, birth_dates=dates, name_key=self.name_key(subject),
                                                limit=rules.MAX_POOL)
            for entry in pool:
                if entry.customer_id in found:
                    continue
                other = rules.Comparable(rules.normalise_name(entry.full_name), entry.birth_date,
                                         rules.normalise_address(entry.address))
                scored = rules.score(rule.fuzzy, comparable, other)
                if scored is not None and scored[0] >= rule.fuzzy.review_threshold:
                    found[entry.customer_id] = Match(entry.customer_id, rule.match_rule_id, scored[0], scored[1])
        ranked = sorted(found.values(), key=lambda m: (-m.score, m.customer_id))
        return ranked[:limit]

    async def find_matches(self, *, uow: UnitOfWork,
                           customer_id: str | None, probe: Customer | None, match_rule_ids: Sequence[str],
                           max_results: int, purpose: Purpose, actor: Principal) -> list[Match]:
        limit = min(max_results, 100) if max_results > 0 else 10
        if max_results < 0:
            raise InvalidArgument([FieldViolation("max_results", "must not be negative")])
        if probe is not None:
            probe = customer_rules.normalise(dataclasses.replace(probe, customer_id=probe.customer_id or "probe"))
            v = customer_rules.validate(probe, today=_now().date())
            if v:
                try:
                    v.raise_if_any()
                except InvalidArgument as error:
                    raise InvalidArgument([FieldViolation(f.field.replace("customer.", "probe.", 1), f.description)
                                           for f in error.violations]) from None
        chosen = await self._rules.in_force(uow, match_rule_ids)
        missing = sorted(set(match_rule_ids) - {r.match_rule_id for r in chosen})
        if missing:
            raise NotFound(f"match rule {missing[0]} not found", reason="MATCH_RULE_NOT_FOUND")
        subject = probe
        if customer_id is not None:
            subject = await load_customer(self._customers, uow=uow, customer_id=customer_id, actor=actor)
        assert subject is not None
        matches = await self.match(uow, subject, chosen, limit=limit)
        open_candidates = {} if probe is not None else await self._candidates.open_for(
            uow, subject.customer_id, [m.customer_id for m in matches])
        now = _now()
        annotated = []
        for found in matches:
            other = await self._customers.get(uow, found.customer_id)
            assert other is not None
            conflict = await self.review_conflict(uow, subject, other, now=now,
                                                   with_consents=probe is None)
            candidate = open_candidates.get(found.customer_id)
            annotated.append(dataclasses.replace(found, review_conflict=conflict,
                                                 candidate_name=candidate.name if candidate else ""))
        read = [m.customer_id for m in annotated] + ([customer_id] if customer_id is not None else [])
        await self._audit.record(*(AuditEntry(principal=actor.subject, action="customer.match",
                                              resource_name=f"customers/{cid}", purpose=purpose.purpose,
                                              justification=purpose.justification) for cid in read))
        return annotated

    async def review_conflict(self, uow: UnitOfWork, a: Customer, b: Customer, *, now: datetime,
                               with_consents: bool = True) -> bool:
        if a.risk_tolerance and b.risk_tolerance and a.risk_tolerance != b.risk_tolerance:
            return True
        if not with_consents:
            return False
        ledger_a = await self._ledger.counting(uow, a.customer_id)
        ledger_b = await self._ledger.counting(uow, b.customer_id)
        if consent_rules.reconcile(ledger_a, ledger_b, now=now).conflicts:
            return True
        today = now.date()
        prefs_a = await self._preferences.get(uow, a.customer_id, language=a.preferred_language)
        prefs_b = await self._preferences.get(uow, b.customer_id, language=b.preferred_language)
        return consent_rules.reconcile_preferences(prefs_a, prefs_b, today=today).do_not_contact_conflict

    async def file_candidate(self, uow: UnitOfWork, subject: Customer, found: Match, *,
                             rule: MatchRule) -> MatchCandidate | None:
        """File a pending candidate for the pair (the matcher); None when it is pending or dismissed already."""
        other = await self._customers.get(uow, found.customer_id)
        if other is None or other.state != ACTIVE:
            return None
        first, second = rules.older_first(subject, other)
        conflict = await self.review_conflict(uow, subject, other, now=_now())
        return await self._candidates.file(uow, MatchCandidate(
            candidate_id=uuid.uuid4(), customer_ids=(first.customer_id, second.customer_id),
            match_rule_id=rule.match_rule_id, score=found.score, similarities=found.similarities, state=PENDING,
            review_conflict=conflict))

    # --- candidates ---------------------------------------------------------------------------

    async def list_candidates(self, *, uow: UnitOfWork,
                              state: int, customer_id: str, match_rule_id: str, min_score: float,
                              page_size: int, page_token: str) -> Page[MatchCandidate]:
        v_state = state or PENDING
        if not 0 <= min_score <= 1:
            raise InvalidArgument([FieldViolation("min_score", "must be from 0 to 1")])
        if v_state not in (PENDING, CANDIDATE_MERGED, DISMISSED):
            raise InvalidArgument([FieldViolation("state", "is not a known MatchCandidateState")])
        limit = clamp_page_size(page_size)
        query = {"state": v_state, "customer": customer_id, "rule": match_rule_id, "min": min_score}
        after = self._page_tokens.decode(page_token, query=query)
        found = await self._candidates.page(uow, state=v_state, customer_id=customer_id,
                                            match_rule_id=match_rule_id, min_score=min_score,
                                            after=tuple(after) if after else None, limit=limit + 1)
        return self._page_tokens.page(found, limit=limit, key=_candidate_key, query=query)

    async def dismiss_candidate(self, *, uow: UnitOfWork, candidate_id: uuid.UUID, reason: str,
                                request_id: uuid.UUID | None, request: Message, actor: Principal) -> MatchCandidate:
        if len(reason) > rules.MAX_DISMISS_REASON:
            raise InvalidArgument([FieldViolation("reason", f"must be at most {rules.MAX_DISMISS_REASON} characters")])
        earlier = await self._idempotency.claim(
            uow, principal=actor.subject, request_id=request_id, method="DismissMatchCandidate",
            request=request, resource_name=f"matchCandidates/{candidate_id}")
        if earlier is not None:  # the same request again: answer with the candidate it dismissed
            candidate_id = uuid.UUID(earlier.removeprefix("matchCandidates/"))
        candidate = await self._candidates.get(uow, candidate_id, for_update=True)
        if candidate is None:
            raise NotFound(f"match candidate {candidate_id} not found", reason="MATCH_CANDIDATE_NOT_FOUND")
        if candidate.state == DISMISSED:
            return candidate  # a retry: the pair is already marked as different customers
        if candidate.state != PENDING:
            raise FailedPrecondition("the candidate is not pending: it was merged",
                                     reason="MATCH_CANDIDATE_NOT_PENDING")
        dismissed = await self._candidates.resolve(uow, candidate_id, state=DISMISSED, by=actor.subject,
                                                   reason=reason)
        await self._audit_change(uow, actor, "match_candidate.dismiss", dismissed.name,
                                 Purpose("DATA_MANAGEMENT", reason))
        return dismissed

    # --- lookup -------------------------------------------------------------------------------

    async def lookup(self, *, uow: UnitOfWork,
                     identifier: Identifier, purpose: Purpose, actor: Principal) -> list[CustomerView]:
        identifier = rules.validate_identifier(identifier)
        if identifier.external_id is not None:
            ids = await self._matches.by_external_id(uow, identifier.external_id)
        elif identifier.id_document is not None:
            doc = identifier.id_document
            ids = await self._matches.by_identifier(uow, id_type=doc.type, id_number=doc.number,
                                                    issuing_country=doc.issuing_country, limit=100)
        else:
            ids = await self._matches.by_identifier(uow, mobile_phone=identifier.mobile_phone,
                                                    email=identifier.email, limit=100)
        live = await self._resolve_live(uow, ids)
        found = []
        for customer_id in live:
            customer = await self._customers.get(uow, customer_id)
            if customer is None or (actor.is_relationship_manager_only
                                    and customer.relationship_manager_id != actor.subject):
                continue
            found.append(customer)
            if len(found) == MAX_LOOKUP_RESULTS:
                break
        if not found:
            raise NotFound("no active customer holds this identifier", reason="CUSTOMER_NOT_FOUND")
        await self._audit.record(*(AuditEntry(principal=actor.subject, action="customer.lookup",
                                              resource_name=c.name, purpose=purpose.purpose,
                                              justification=purpose.justification) for c in found))
        return [customer_rules.view_for(actor, c) for c in found]

    async def _resolve_live(self, uow: UnitOfWork, customer_ids: Sequence[str]) -> list[str]:
        """The live customers behind ids: a merged-away record is replaced by its survivor."""
        resolved: list[str] = []
        pending = list(customer_ids)
        for _ in range(MAX_MERGE_CHAIN):
            if not pending:
                break
            states = await self._matches.states(uow, pending)
            pending = []
            for customer_id, (state, merged_into) in sorted(states.items()):
                if state == ACTIVE and customer_id not in resolved:
                    resolved.append(customer_id)
                elif state == MERGED and merged_into:
                    pending.append(merged_into.removeprefix("customers/"))
        return resolved

    async def _audit_change(self, uow: UnitOfWork, actor: Principal, action: str, resource_name: str,
                            purpose: Purpose) -> None:
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action=action, resource_name=resource_name, purpose=purpose.purpose,
            justification=purpose.justification)])


def _rule_not_found(match_rule_id: str) -> NotFound:
    return NotFound(f"match rule {match_rule_id} not found", reason="MATCH_RULE_NOT_FOUND")
