"""Compile a checked rule to a plain Python closure over a dict of feature values.

Each node becomes a small function returning its value, or None for "undefined" (a missing
feature, or an error such as division by zero or int64 overflow); the rule's function turns
undefined into False. No `eval`, no generated source: rule text only ever becomes constants.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from crm_segment.cel.check import INT_MAX, INT_MIN
from crm_segment.cel.model import (
    Arithmetic,
    Call,
    CelType,
    CheckedRule,
    Compare,
    Conditional,
    Has,
    In,
    ListLiteral,
    Literal,
    Logical,
    Negate,
    Node,
    Not,
    Variable,
)

Features = Mapping[str, Any]
Evaluator = Callable[[Features], Any]
Predicate = Callable[[Features], bool]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def to_python(rule: CheckedRule) -> Predicate:
    """A function of the features (a missing key or None is a missing value) that says whether they match."""
    evaluate = _compile(rule.root)

    def matches(features: Features) -> bool:
        return evaluate(features) is True

    return matches


def _compile(node: Node) -> Evaluator:
    if isinstance(node, Literal):
        value = node.value
        return lambda _: value
    if isinstance(node, ListLiteral):
        values = frozenset(node.values)
        return lambda _: values
    if isinstance(node, Variable):
        name = node.name
        return lambda features: features.get(name)
    if isinstance(node, Has):
        name = node.name
        return lambda features: features.get(name) is not None
    if isinstance(node, Not):
        return _not(_compile(node.operand))
    if isinstance(node, Negate):
        return _negate(_compile(node.operand), node.type)
    if isinstance(node, Logical):
        return _logical(node.operator, _compile(node.left), _compile(node.right))
    if isinstance(node, Compare):
        return _compare(node)
    if isinstance(node, Arithmetic):
        return _arithmetic(node)
    if isinstance(node, In):
        return _in(_compile(node.item), _compile(node.container))
    if isinstance(node, Call):
        return _call(node)
    if isinstance(node, Conditional):
        return _conditional(_compile(node.condition), _compile(node.then), _compile(node.otherwise))
    raise TypeError(f"no closure for {type(node).__name__}")  # pragma: no cover - check() builds no other node


def _not(operand: Evaluator) -> Evaluator:
    def evaluate(features: Features) -> Any:
        value = operand(features)
        return None if value is None else not value
    return evaluate


def _negate(operand: Evaluator, kind: CelType) -> Evaluator:
    def evaluate(features: Features) -> Any:
        value = operand(features)
        return None if value is None else _fits(-value, kind)
    return evaluate


def _logical(symbol: str, left: Evaluator, right: Evaluator) -> Evaluator:
    # CEL absorbs an undefined side when the other side decides: false && x, true || x.
    decisive = symbol == "||"

    def evaluate(features: Features) -> Any:
        a = left(features)
        if a is decisive:
            return decisive
        b = right(features)
        if b is decisive:
            return decisive
        return None if a is None or b is None else not decisive
    return evaluate


def _compare(node: Compare) -> Evaluator:
    test = _COMPARE[node.operator]
    right_node = node.right
    if isinstance(node.left, Variable) and isinstance(right_node, Literal):
        # The common shape, `feature op literal`, without the two nested calls.
        name, constant = node.left.name, right_node.value

        def feature_against_literal(features: Features) -> Any:
            value = features.get(name)
            return None if value is None else test(value, constant)
        return feature_against_literal
    left, right = _compile(node.left), _compile(right_node)

    def evaluate(features: Features) -> Any:
        a = left(features)
        if a is None:
            return None
        b = right(features)
        return None if b is None else test(a, b)
    return evaluate


def _arithmetic(node: Arithmetic) -> Evaluator:
    left, right = _compile(node.left), _compile(node.right)
    kind = node.type
    combine = _ARITHMETIC[(node.operator, node.left.type is CelType.INT)]

    def evaluate(features: Features) -> Any:
        a = left(features)
        if a is None:
            return None
        b = right(features)
        if b is None:
            return None
        result = combine(a, b)
        return None if result is None else _fits(result, kind)
    return evaluate


def _fits(value: Any, kind: CelType) -> Any:
    """CEL ints are 64-bit: a result outside is an error, here undefined."""
    if kind is CelType.INT and not INT_MIN <= value <= INT_MAX:
        return None
    return value


def _truncating_divide(a: int, b: int) -> int | None:
    """CEL (like SQL) rounds int division toward zero; Python's // floors."""
    if b == 0:
        return None
    quotient = abs(a) // abs(b)
    return -quotient if (a < 0) != (b < 0) else quotient


def _truncating_remainder(a: int, b: int) -> int | None:
    quotient = _truncating_divide(a, b)
    return None if quotient is None else a - b * quotient


def _divide(a: float, b: float) -> float | None:
    # Undefined rather than IEEE infinity: SQL has no matching value (see the package docstring).
    return None if b == 0 else a / b


_ARITHMETIC: dict[tuple[str, bool], Callable[[Any, Any], Any]] = {
    **{(symbol, is_int): function for symbol, function in (("+", operator.add), ("-", operator.sub),
                                                           ("*", operator.mul)) for is_int in (True, False)},
    ("/", True): _truncating_divide, ("%", True): _truncating_remainder, ("/", False): _divide,
}


def _in(item: Evaluator, container: Evaluator) -> Evaluator:
    def evaluate(features: Features) -> Any:
        value = item(features)
        if value is None:
            return None
        values = container(features)
        return None if values is None else value in values
    return evaluate


def _call(node: Call) -> Evaluator:
    receiver = _compile(node.receiver)
    if node.argument is None:
        def size(features: Features) -> Any:
            value = receiver(features)
            return None if value is None else len(value)
        return size
    argument = _compile(node.argument)
    method = {"startsWith": str.startswith, "endsWith": str.endswith, "contains": str.__contains__}[node.function]

    def evaluate(features: Features) -> Any:
        text = receiver(features)
        if text is None:
            return None
        part = argument(features)
        return None if part is None else method(text, part)
    return evaluate


def _conditional(condition: Evaluator, then: Evaluator, otherwise: Evaluator) -> Evaluator:
    def evaluate(features: Features) -> Any:
        decided = condition(features)
        if decided is None:
            return None
        return then(features) if decided else otherwise(features)
    return evaluate
