"""Pure decisions of an explanation: split a rule into its top-level clauses, evaluate each one
with its own closure, and show the values it read. No I/O.

Each clause is checked and compiled on its own, by the same checker and compiler membership
uses, so a clause's outcome is exactly what that part of the rule evaluates to. Undefined is
told apart from false by also evaluating `!(clause)`: only a defined clause makes one of the
two true.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import celpy
from lark import Tree

from crm_segment import cel
from crm_segment.explain.model import ClauseOutcome, ClauseResult, Explanation
from crm_segment.segments import catalogue
from crm_segment.segments import rules as segment_rules

_CHAINS = {"conditionalor": "||", "conditionaland": "&&"}
# Grammar levels that wrap one child without meaning anything (as cel.check skips them).
_WRAPPERS = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
                       "unary", "member", "primary", "paren_expr"})


def clauses(rule: str) -> list[str]:
    """Source texts of the operands of the rule's outermost `&&` or `||` chain, nested chains of
    the same operator (parenthesised or not) flattened; the whole rule when it has no chain.
    Raises `cel.InvalidRule` when the rule does not parse."""
    try:
        tree = celpy.CELParser().parse(rule)
    except celpy.CELParseError as error:
        raise cel.InvalidRule(cel.RuleError("SYNTAX_ERROR", str(error))) from None
    top = _unwrap(tree)
    if not isinstance(top, Tree) or top.data not in _CHAINS or len(top.children) != 2:
        return [rule.strip()]
    return [rule[start:end].strip() for start, end in _operands(top, top.data)]


def _unwrap(node: Any) -> Any:
    while isinstance(node, Tree) and node.data in _WRAPPERS and len(node.children) == 1:
        node = node.children[0]
    return node


def _operands(node: Tree, chain: str) -> list[tuple[int, int]]:
    spans = []
    for child in node.children:
        inner = _unwrap(child)
        if isinstance(inner, Tree) and inner.data == chain and len(inner.children) == 2:
            spans.extend(_operands(inner, chain))
        else:
            spans.append((child.meta.start_pos, child.meta.end_pos))
    return spans


def explain(rule: str, features: Mapping[str, Any]) -> Explanation:
    """Whether the rule holds for these values and, clause by clause, why. Raises
    `cel.InvalidRule` when the rule no longer checks against the catalogue."""
    member = cel.to_python(cel.check(rule, segment_rules.CEL_CATALOGUE))(features)
    results = tuple(_clause(text, features) for text in clauses(rule))
    as_of = features.get("features_as_of")
    return Explanation(member=member, clauses=results, features_as_of=as_of if isinstance(as_of, datetime) else None)


def _clause(text: str, features: Mapping[str, Any]) -> ClauseResult:
    checked = cel.check(text, segment_rules.CEL_CATALOGUE)
    if cel.to_python(checked)(features):
        outcome = ClauseOutcome.HELD
    elif cel.to_python(cel.check(f"!({text})", segment_rules.CEL_CATALOGUE))(features):
        outcome = ClauseOutcome.NOT_HELD
    else:
        outcome = ClauseOutcome.UNDEFINED
    names = sorted(checked.variables - {catalogue.NOW})
    return ClauseResult(text=text, outcome=outcome, values={n: as_text(features.get(n)) for n in names})


def as_text(value: Any) -> str:
    """A feature value as the contract shows it: "" missing, CEL's spelling otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())}s"
    if isinstance(value, list | tuple | frozenset | set):
        return ",".join(str(v) for v in value)
    return str(value)
