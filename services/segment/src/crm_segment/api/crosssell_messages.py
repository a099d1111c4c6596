"""Cross-sell protos <-> domain values. Nothing else: no rules, no I/O. `run_to_proto` is also the
association operation's response, made in the worker process (a module-level function pickles)."""

from __future__ import annotations

from crm.common.v1 import operation_pb2
from crm.segment.v1 import analytics_pb2
from crm_segment.crosssell.model import AssociationRun, StoredRule
from crm_segment.crosssell.service import RUN_NAME
from crmkit.values import set_timestamps


def run_to_proto(run: AssociationRun) -> analytics_pb2.AssociationRun:
    spec = run.spec
    message = analytics_pb2.AssociationRun(
        name=RUN_NAME.format(run.run_id), state=operation_pb2.OperationState.ValueType(run.state),
        operation=f"operations/{run.operation_id}",
        population_segment=f"segments/{spec.population_segment_id}" if spec.population_segment_id else "",
        min_support=spec.min_support, min_confidence=spec.min_confidence, min_lift=spec.min_lift,
        max_rule_size=spec.max_rule_size, max_rules=spec.max_rules, customer_count=run.customer_count,
        rule_count=run.rule_count, matching_rule_count=run.matching_rule_count, creator=run.creator)
    set_timestamps(message, create_time=run.created_at, end_time=run.ended_at, features_as_of=run.features_as_of)
    return message


def rule_to_proto(run_id: str, stored: StoredRule) -> analytics_pb2.AssociationRule:
    rule = stored.rule
    return analytics_pb2.AssociationRule(
        name=f"{RUN_NAME.format(run_id)}/rules/{stored.rule_id}", antecedent_items=rule.antecedent,
        consequent_items=[rule.consequent], support=rule.support, confidence=rule.confidence, lift=rule.lift,
        customer_count=rule.both_count, antecedent_customer_count=rule.antecedent_count,
        consequent_customer_count=rule.consequent_count, target_rule=stored.target_rule)
