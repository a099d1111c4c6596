"""The identity domain's enums are the contract's: same names, same numbers, so neither can drift."""

from __future__ import annotations

from enum import IntEnum

import pytest
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from crm.profile.v1 import identity_pb2
from crm_profile.identity import model


@pytest.mark.parametrize(("domain", "contract", "prefix"), [
    (model.MatchKey, identity_pb2.MatchKey, "MATCH_KEY_"),
    (model.FuzzyField, identity_pb2.FuzzyField, "FUZZY_FIELD_"),
    (model.SimilarityMethod, identity_pb2.SimilarityMethod, "SIMILARITY_METHOD_"),
    (model.MatchAction, identity_pb2.MatchAction, "MATCH_ACTION_"),
    (model.MatchCandidateState, identity_pb2.MatchCandidateState, "MATCH_CANDIDATE_STATE_"),
    (model.SurvivorshipStrategy, identity_pb2.SurvivorshipStrategy, "SURVIVORSHIP_STRATEGY_"),
    (model.MergeState, identity_pb2.MergeState, "MERGE_STATE_"),
    (model.MergeReviewReason, identity_pb2.MergeReviewReason, "MERGE_REVIEW_REASON_"),
])
def test_each_domain_enum_has_the_contracts_names_and_numbers(domain: type[IntEnum], contract: EnumTypeWrapper,
                                                              prefix: str) -> None:
    assert {prefix + m.name: m.value for m in domain} == {v.name: v.number for v in contract.DESCRIPTOR.values}
