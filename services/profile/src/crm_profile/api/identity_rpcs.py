"""Identity-resolution RPCs of ProfileService: proto -> arguments, one unit of work and one service
call in it, result -> proto."""

from __future__ import annotations

import grpc

from crm.profile.v1 import identity_pb2 as pb
from crm_profile.api import customer_messages, identity_messages
from crm_profile.identity.merging import Merges
from crm_profile.identity.service import Identity
from crmkit.auth import current_principal
from crmkit.db import Database
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.idempotency import parse_request_id
from crmkit.resources import ResourceName, purpose_from

CUSTOMER = ResourceName("customers/{customer_id}")
MATCH_RULE = identity_messages.MATCH_RULE
ALL_CUSTOMERS = "customers/-"


class IdentityRpcs:
    """Match rules, candidates, merge and unmerge, lookup."""

    _db: Database
    _identity: Identity
    _merges: Merges

    async def CreateMatchRule(self, request: pb.CreateMatchRuleRequest, context: grpc.aio.ServicerContext
                              ) -> pb.CreateMatchRuleResponse:
        async with self._db.unit_of_work() as uow:
            rule = await self._identity.create_rule(uow=uow, rule=identity_messages.rule_to_domain(request.match_rule),
                                                    request_id=parse_request_id(request.request_id), request=request,
                                                    actor=current_principal())
        return pb.CreateMatchRuleResponse(match_rule=identity_messages.rule_to_proto(rule))

    async def GetMatchRule(self, request: pb.GetMatchRuleRequest, context: grpc.aio.ServicerContext
                           ) -> pb.GetMatchRuleResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            rule = await self._identity.get_rule(uow=uow, match_rule_id=MATCH_RULE.parse_one(request.name))
        return pb.GetMatchRuleResponse(match_rule=identity_messages.rule_to_proto(rule))

    async def ListMatchRules(self, request: pb.ListMatchRulesRequest, context: grpc.aio.ServicerContext
                             ) -> pb.ListMatchRulesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._identity.list_rules(uow=uow, page_size=request.page_size, page_token=request.page_token)
        return pb.ListMatchRulesResponse(match_rules=[identity_messages.rule_to_proto(r) for r in page.items],
                                         next_page_token=page.next_page_token)

    async def UpdateMatchRule(self, request: pb.UpdateMatchRuleRequest, context: grpc.aio.ServicerContext
                              ) -> pb.UpdateMatchRuleResponse:
        rule_id = MATCH_RULE.parse_one(request.match_rule.name, "match_rule.name")
        async with self._db.unit_of_work() as uow:
            rule = await self._identity.update_rule(uow=uow,
                changes=identity_messages.rule_to_domain(request.match_rule, match_rule_id=rule_id),
                paths=list(request.update_mask.paths), etag=request.match_rule.etag, actor=current_principal())
        return pb.UpdateMatchRuleResponse(match_rule=identity_messages.rule_to_proto(rule))

    async def DeleteMatchRule(self, request: pb.DeleteMatchRuleRequest, context: grpc.aio.ServicerContext
                              ) -> pb.DeleteMatchRuleResponse:
        async with self._db.unit_of_work() as uow:
            await self._identity.delete_rule(
                uow=uow, match_rule_id=MATCH_RULE.parse_one(request.name), etag=request.etag,
                                             actor=current_principal())
        return pb.DeleteMatchRuleResponse()

    async def FindMatches(self, request: pb.FindMatchesRequest, context: grpc.aio.ServicerContext
                          ) -> pb.FindMatchesResponse:
        subject = request.WhichOneof("subject")
        if subject is None:
            raise InvalidArgument([FieldViolation("subject", "is required: a customer or a probe record")])
        async with self._db.unit_of_work(read_only=True) as uow:
            matches = await self._identity.find_matches(uow=uow,
                customer_id=CUSTOMER.parse_one(request.customer, "customer") if subject == "customer" else None,
                probe=identity_messages.probe_to_domain(request.probe) if subject == "probe" else None,
                match_rule_ids=[MATCH_RULE.parse_one(n, f"match_rules[{i}]") for i,
                                                     n in enumerate(request.match_rules)],
                max_results=request.max_results, purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return pb.FindMatchesResponse(matches=[identity_messages.match_to_proto(m) for m in matches])

    async def ListMatchCandidates(self, request: pb.ListMatchCandidatesRequest, context: grpc.aio.ServicerContext
                                  ) -> pb.ListMatchCandidatesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._identity.list_candidates(uow=uow,
                state=request.state,
                customer_id=CUSTOMER.parse_one(request.customer, "customer") if request.customer else "",
                match_rule_id=MATCH_RULE.parse_one(request.match_rule, "match_rule") if request.match_rule else "",
                min_score=request.min_score, page_size=request.page_size, page_token=request.page_token,
            )
        return pb.ListMatchCandidatesResponse(
            match_candidates=[identity_messages.candidate_to_proto(c) for c in page.items],
            next_page_token=page.next_page_token)

    async def DismissMatchCandidate(self, request: pb.DismissMatchCandidateRequest,
                                    context: grpc.aio.ServicerContext) -> pb.DismissMatchCandidateResponse:
        async with self._db.unit_of_work() as uow:
            candidate = await self._identity.dismiss_candidate(
                uow=uow, candidate_id=identity_messages.parse_candidate(request.name), reason=request.reason,
                request_id=parse_request_id(request.request_id), request=request, actor=current_principal())
        return pb.DismissMatchCandidateResponse(match_candidate=identity_messages.candidate_to_proto(candidate))

    async def MergeCustomers(self, request: pb.MergeCustomersRequest, context: grpc.aio.ServicerContext
                             ) -> pb.MergeCustomersResponse:
        async with self._db.unit_of_work() as uow:
            merged = await self._merges.merge(uow=uow,
                survivor_id=CUSTOMER.parse_one(request.name), etag=request.etag,
                source_id=CUSTOMER.parse_one(request.source_customer, "source_customer"),
                                             source_etag=request.source_etag,
                survivorship=identity_messages.survivorship_to_domain(request.survivorship_rules),
                default_strategy=request.default_strategy,
                candidate_id=identity_messages.parse_candidate(request.match_candidate, "match_candidate")
                if request.match_candidate else None,
                validate_only=request.validate_only, request_id=parse_request_id(request.request_id), request=request,
                purpose=purpose_from(request.audit), actor=current_principal(),
            )
        return pb.MergeCustomersResponse(customer=customer_messages.to_proto(merged.customer),
                                         merge=identity_messages.merge_to_proto(merged.merge))

    async def UnmergeCustomers(self, request: pb.UnmergeCustomersRequest, context: grpc.aio.ServicerContext
                               ) -> pb.UnmergeCustomersResponse:
        async with self._db.unit_of_work() as uow:
            unmerged = await self._merges.unmerge(uow=uow,
                customer_id=CUSTOMER.parse_one(request.name), etag=request.etag,
                request_id=parse_request_id(request.request_id), request=request, purpose=purpose_from(request.audit),
                actor=current_principal(),
            )
        return pb.UnmergeCustomersResponse(survivor=customer_messages.to_proto(unmerged.survivor),
                                           restored=customer_messages.to_proto(unmerged.restored),
                                           merge=identity_messages.merge_to_proto(unmerged.merge))

    async def ListMerges(self, request: pb.ListMergesRequest, context: grpc.aio.ServicerContext
                         ) -> pb.ListMergesResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            page = await self._merges.list_merges(uow=uow,
                survivor_id=None if request.parent == ALL_CUSTOMERS else CUSTOMER.parse_one(request.parent, "parent"),
                review_required=request.review_required, state=request.state, page_size=request.page_size,
                page_token=request.page_token, actor=current_principal(),
            )
        return pb.ListMergesResponse(merges=[identity_messages.merge_to_proto(m) for m in page.items],
                                     next_page_token=page.next_page_token)

    async def LookupCustomer(self, request: pb.LookupCustomerRequest, context: grpc.aio.ServicerContext
                             ) -> pb.LookupCustomerResponse:
        async with self._db.unit_of_work(read_only=True) as uow:
            found = await self._identity.lookup(uow=uow, identifier=identity_messages.identifier_to_domain(request),
                                                purpose=purpose_from(request.audit), actor=current_principal())
        return pb.LookupCustomerResponse(customers=[customer_messages.to_proto(v) for v in found])
