"""Identity-resolution protos <-> domain. Nothing else: no rules, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from google.protobuf.message import Message

from crm.profile.v1 import consent_pb2, customer_pb2, identity_pb2
from crm_profile.api import consent_messages, customer_messages, holding_messages, relationship_messages
from crm_profile.api.consent_messages import stamp
from crm_profile.consents.model import ConsentRecord, ContactPreferences
from crm_profile.customers.model import Customer, ExternalId
from crm_profile.holdings.model import Holding
from crm_profile.identity.model import (
    FieldSimilarity,
    FuzzyComparison,
    FuzzyCriteria,
    IdDocumentKey,
    Identifier,
    Match,
    MatchCandidate,
    MatchRule,
    Merge,
    SurvivorshipRule,
)
from crm_profile.relationships.model import Relationship
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.resources import ResourceName

MATCH_RULE = ResourceName("matchRules/{match_rule_id}")
CANDIDATE = ResourceName("matchCandidates/{match_candidate_id}")
CUSTOMER = ResourceName("customers/{customer_id}")


def rule_to_domain(message: identity_pb2.MatchRule, *, match_rule_id: str | None = None) -> MatchRule:
    criteria = message.WhichOneof("criteria")
    fuzzy = None
    if criteria == "fuzzy":
        f = message.fuzzy
        fuzzy = FuzzyCriteria(
            comparisons=tuple(FuzzyComparison(c.field, c.method, c.weight, c.min_similarity) for c in f.comparisons),
            review_threshold=f.review_threshold, auto_merge_threshold=f.auto_merge_threshold)
    return MatchRule(
        match_rule_id=message.match_rule_id if match_rule_id is None else match_rule_id,
        display_name=message.display_name, description=message.description, disabled=message.disabled,
        priority=message.priority, exact_key=message.exact.key if criteria == "exact" else None, fuzzy=fuzzy,
        action=message.action, survivorship_rules=survivorship_to_domain(message.survivorship_rules),
    )


def survivorship_to_domain(messages: Iterable[identity_pb2.SurvivorshipRule]) -> tuple[SurvivorshipRule, ...]:
    return tuple(SurvivorshipRule(m.field, m.strategy, tuple(m.source_priority)) for m in messages)


def _survivorship_to_proto(rule: SurvivorshipRule) -> identity_pb2.SurvivorshipRule:
    return identity_pb2.SurvivorshipRule(field=rule.field,
                                         strategy=identity_pb2.SurvivorshipStrategy.ValueType(rule.strategy),
                                         source_priority=list(rule.source_priority))


def rule_to_proto(rule: MatchRule) -> identity_pb2.MatchRule:
    message = identity_pb2.MatchRule(
        name=rule.name, match_rule_id=rule.match_rule_id, etag=rule.etag, display_name=rule.display_name,
        description=rule.description, disabled=rule.disabled, priority=rule.priority,
        action=identity_pb2.MatchAction.ValueType(rule.action),
        survivorship_rules=[_survivorship_to_proto(s) for s in rule.survivorship_rules],
        create_time=stamp(rule.created_at), update_time=stamp(rule.updated_at),
    )
    if rule.exact_key is not None:
        message.exact.key = identity_pb2.MatchKey.ValueType(rule.exact_key)
    elif rule.fuzzy is not None:
        message.fuzzy.review_threshold = rule.fuzzy.review_threshold
        message.fuzzy.auto_merge_threshold = rule.fuzzy.auto_merge_threshold
        for c in rule.fuzzy.comparisons:
            message.fuzzy.comparisons.add(field=c.field, method=c.method, weight=c.weight,
                                          min_similarity=c.min_similarity)
    return message


def parse_candidate(name: str, field: str = "name") -> uuid.UUID:
    candidate_id = CANDIDATE.parse_one(name, field)
    try:
        return uuid.UUID(candidate_id)
    except ValueError:
        raise InvalidArgument([FieldViolation(field, "names no match candidate: the id must be a UUID")]) from None


def _similarities(similarities: tuple[FieldSimilarity, ...]) -> list[identity_pb2.FieldSimilarity]:
    return [identity_pb2.FieldSimilarity(field=identity_pb2.FuzzyField.ValueType(s.field), similarity=s.similarity)
            for s in similarities]


def candidate_to_proto(candidate: MatchCandidate) -> identity_pb2.MatchCandidate:
    return identity_pb2.MatchCandidate(
        name=candidate.name, customers=[f"customers/{c}" for c in candidate.customer_ids],
        match_rule=f"matchRules/{candidate.match_rule_id}", score=candidate.score,
        similarities=_similarities(candidate.similarities),
        state=identity_pb2.MatchCandidateState.ValueType(candidate.state),
        review_conflict=candidate.review_conflict, create_time=stamp(candidate.created_at),
        resolve_time=stamp(candidate.resolved_at), resolved_by=candidate.resolved_by, merge=candidate.merge_name,
    )


def match_to_proto(found: Match) -> identity_pb2.MatchResult:
    return identity_pb2.MatchResult(
        customer=f"customers/{found.customer_id}", match_rule=f"matchRules/{found.match_rule_id}", score=found.score,
        similarities=_similarities(found.similarities), match_candidate=found.candidate_name,
        review_conflict=found.review_conflict)


def merge_to_proto(merge: Merge) -> identity_pb2.Merge:
    return identity_pb2.Merge(
        name=merge.name, survivor=f"customers/{merge.survivor_id}", source=f"customers/{merge.source_id}",
        state=identity_pb2.MergeState.ValueType(merge.state),
        field_lineage=[identity_pb2.FieldLineage(
            field=x.field, chosen_from=f"customers/{x.chosen_from}",
            strategy=identity_pb2.SurvivorshipStrategy.ValueType(x.strategy),
            source_system=x.source_system, value_time=stamp(x.value_time)) for x in merge.field_lineage],
        consent_conflicts=[identity_pb2.ConsentConflict(
            purpose=consent_pb2.ConsentPurpose.ValueType(x.purpose),
            channel=consent_pb2.ContactChannel.ValueType(x.channel),
            survivor_status=consent_pb2.ConsentStatus.ValueType(x.survivor_status),
            source_status=consent_pb2.ConsentStatus.ValueType(x.source_status),
            result_status=consent_pb2.ConsentStatus.ValueType(x.result_status))
            for x in merge.consent_conflicts],
        review_required=merge.review_required,
        review_reasons=[identity_pb2.MergeReviewReason.ValueType(r) for r in merge.review_reasons],
        match_candidate=f"matchCandidates/{merge.match_candidate_id}" if merge.match_candidate_id else "",
        match_rule=f"matchRules/{merge.match_rule_id}" if merge.match_rule_id else "",
        merged_by=merge.merged_by, merge_time=stamp(merge.merged_at), unmerged_by=merge.unmerged_by,
        unmerge_time=stamp(merge.unmerged_at),
    )


def probe_to_domain(message: customer_pb2.Customer) -> Customer:
    """A FindMatches probe: read as CreateCustomer reads a customer, bad fields named `probe.<field>`."""
    try:
        return customer_messages.to_domain(message)
    except InvalidArgument as error:
        raise InvalidArgument([FieldViolation(v.field.replace("customer.", "probe.", 1), v.description)
                               for v in error.violations]) from None


def identifier_to_domain(request: identity_pb2.LookupCustomerRequest) -> Identifier:
    which = request.WhichOneof("identifier")
    if which == "id_document":
        doc = request.id_document
        return Identifier(id_document=IdDocumentKey(doc.type, doc.number, doc.issuing_country))
    if which == "mobile_phone":
        return Identifier(mobile_phone=request.mobile_phone)
    if which == "email":
        return Identifier(email=request.email)
    if which == "external_id":
        return Identifier(external_id=ExternalId(request.external_id.source_system, request.external_id.id))
    return Identifier()


class FeedPayloads:
    """Change-feed payloads of everything a merge touches; customers as the app's feed shows them."""

    def __init__(self, customer: Callable[[Customer], Message]) -> None:
        self.customer = customer

    def record(self, record: ConsentRecord) -> Message:
        return consent_messages.record_to_proto(record)

    def preferences(self, preferences: ContactPreferences) -> Message:
        return consent_messages.preferences_to_proto(preferences)

    def relationship(self, relationship: Relationship) -> Message:
        return relationship_messages.to_proto(relationship)

    def merge(self, merge: Merge) -> Message:
        return merge_to_proto(merge)

    def holding(self, holding: Holding) -> Message:
        return holding_messages.to_proto(holding)
