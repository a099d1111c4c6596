"""Compile a checked rule to a PostgreSQL WHERE condition: text plus bound parameters.

Placeholders are asyncpg's `$1`, `$2`, ... each with an explicit cast, so PostgreSQL never has
to guess a parameter's type. Rule text never reaches the SQL text: literals become parameters,
and variables become the column expressions the caller maps them to (from the catalogue).

A missing value (SQL NULL) propagates the way the package docstring defines "undefined": NULL in
comparisons, arithmetic and functions, absorbed by `AND`/`OR` exactly as CEL absorbs errors, and
a NULL condition selects nobody. Where PostgreSQL would turn NULL into a value (`NULL = ANY('{}')`
is false, `CASE` falls through to `ELSE`) the translation guards it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, localcontext

from crm_segment.cel.model import (
    Arithmetic,
    Call,
    CelType,
    CheckedRule,
    Compare,
    Conditional,
    Has,
    In,
    InvalidRule,
    ListLiteral,
    Literal,
    Logical,
    Negate,
    Node,
    Not,
    RuleError,
    Value,
    Variable,
)

_CASTS = {CelType.BOOL: "boolean", CelType.INT: "bigint", CelType.DOUBLE: "double precision", CelType.STRING: "text",
          CelType.TIMESTAMP: "timestamptz", CelType.LIST_STRING: "text[]", CelType.LIST_INT: "bigint[]",
          CelType.LIST_DOUBLE: "double precision[]"}
_OPERATORS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_MICROSECOND = timedelta(microseconds=1)
MAX_SQL = 1_000_000


@dataclass(frozen=True)
class SqlCondition:
    """`WHERE {text}` with `params` bound to `$1..$n` in order."""

    text: str
    params: tuple[object, ...]


def to_sql(rule: CheckedRule, columns: Mapping[str, str], numeric: Mapping[str, str] | None = None) -> SqlCondition:
    """The rule as a condition over `columns` (variable -> trusted SQL expression of its column).

    Column types must match the catalogue: bigint/integer, double precision, text, boolean,
    timestamptz, text[] (and interval for durations).

    `numeric` names the double variables stored as NUMERIC (variable -> the uncast NUMERIC
    expression; `columns` has it cast to double precision). A comparison of such a variable with
    a literal compares the NUMERIC column with an exact NUMERIC bound instead of casting every
    row (PostgreSQL converts NUMERIC to double through text, per row), with the same verdict:
    the bound is where the double the value converts to crosses the literal (`_at_least`).
    """
    missing = sorted(rule.variables - columns.keys())
    if missing:
        raise ValueError(f"no column for {', '.join(missing)}")
    compiler = _Compiler(columns, numeric or {})
    return SqlCondition(compiler.emit(rule.root), tuple(compiler.params))


# For `literal op variable`, the same comparison written `variable op' literal`.
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
# Beyond this the NUMERIC path is not worth its exactness arithmetic; such literals keep the cast.
_NUMERIC_LIMIT = 1e300


def _even(value: float) -> bool:
    """Whether the double's last significand bit is 0 (round-half-even's choice on a tie)."""
    return struct.unpack("<q", struct.pack("<d", value))[0] & 1 == 0


def _at_least(bound: float) -> tuple[Decimal, bool]:
    """(t, inclusive) such that a real x rounds to a double >= `bound` exactly when x >= t
    (inclusive) or x > t: t is the midpoint between `bound` and the double below it, and a tie
    rounds to the one whose significand is even (correct rounding, as PostgreSQL's NUMERIC ->
    double conversion through text does)."""
    below = math.nextafter(bound, -math.inf)
    with localcontext() as context:
        context.prec = 2_000  # exact: both doubles are finite binary fractions
        midpoint = (Decimal(below) + Decimal(bound)) / 2
    return midpoint, _even(bound)


class _Compiler:
    def __init__(self, columns: Mapping[str, str], numeric: Mapping[str, str]) -> None:
        self.columns = columns
        self.numeric = numeric
        self.params: list[object] = []

    def bind(self, value: Value | tuple[Value, ...], kind: CelType) -> str:
        if kind is CelType.DURATION:
            # A duration as whole microseconds times a fixed interval: no day part, so adding it to
            # a timestamp does not depend on the session's time zone.
            assert isinstance(value, timedelta)
            self.params.append(value // _MICROSECOND)
            return f"(${len(self.params)}::bigint * interval '1 microsecond')"
        self.params.append(list(value) if isinstance(value, tuple) else value)
        return f"${len(self.params)}::{_CASTS[kind]}"

    def emit(self, node: Node) -> str:
        if isinstance(node, Literal):
            return self.bind(node.value, node.type)
        if isinstance(node, ListLiteral):
            return self.bind(node.values, node.type)
        if isinstance(node, Variable):
            return f"({self.columns[node.name]})"
        if isinstance(node, Has):
            return f"(({self.columns[node.name]}) IS NOT NULL)"
        if isinstance(node, Not):
            return f"(NOT {self.emit(node.operand)})"
        if isinstance(node, Negate):
            return f"(-{self.emit(node.operand)})"
        if isinstance(node, Logical):
            keyword = "AND" if node.operator == "&&" else "OR"
            return f"({self.emit(node.left)} {keyword} {self.emit(node.right)})"
        if isinstance(node, Compare):
            exact = self._numeric_compare(node)
            if exact is not None:
                return exact
            left = self.emit(node.left)
            if node.left.type is CelType.STRING and node.operator not in ("==", "!="):
                # CEL orders strings by code point; "C" collation orders UTF-8 bytes, the same order.
                left = f'{left} COLLATE "C"'
            return f"({left} {_OPERATORS[node.operator]} {self.emit(node.right)})"
        if isinstance(node, Arithmetic):
            return self._arithmetic(node)
        if isinstance(node, In):
            item = self.emit(node.item)
            if len(item) > MAX_SQL:
                # `in` repeats its item's text; only a deliberately nested rule grows this far.
                raise InvalidRule(RuleError("TOO_COMPLEX", "the rule is too complex to evaluate; split it"))
            # NULL = ANY('{}') is false in SQL, but a missing item must stay undefined.
            return f"(CASE WHEN {item} IS NOT NULL THEN {item} = ANY({self.emit(node.container)}) END)"
        if isinstance(node, Call):
            return self._call(node)
        if isinstance(node, Conditional):
            # A searched CASE sends a NULL condition to ELSE; this form matches neither branch, so
            # the result stays undefined, as CEL's ?: is.
            return (f"(CASE {self.emit(node.condition)} WHEN true THEN {self.emit(node.then)} "
                    f"WHEN false THEN {self.emit(node.otherwise)} END)")
        raise TypeError(f"no SQL for {type(node).__name__}")  # pragma: no cover - check() builds no other node

    def _numeric_compare(self, node: Compare) -> str | None:
        """`variable op literal` over a NUMERIC column as NUMERIC bounds; None when not that."""
        operator, variable, literal = node.operator, node.left, _double_literal(node.right)
        if literal is None:
            operator, variable, literal = _FLIPPED[operator], node.right, _double_literal(node.left)
        if literal is None or not isinstance(variable, Variable) or variable.name not in self.numeric:
            return None
        if not abs(literal) < _NUMERIC_LIMIT:
            return None
        column = f"({self.numeric[variable.name]})"
        above = math.nextafter(literal, math.inf)

        def at_least(bound: float) -> str:
            value, inclusive = _at_least(bound)
            self.params.append(value)
            return f"({column} {'>=' if inclusive else '>'} ${len(self.params)}::numeric)"

        def below(bound: float) -> str:
            value, inclusive = _at_least(bound)
            self.params.append(value)
            return f"({column} {'<' if inclusive else '<='} ${len(self.params)}::numeric)"

        if operator == ">=":
            return at_least(literal)
        if operator == ">":
            return at_least(above)
        if operator == "<":
            return below(literal)
        if operator == "<=":
            return below(above)
        if operator == "==":
            return f"({at_least(literal)} AND {below(above)})"
        return f"({below(literal)} OR {at_least(above)})"

    def _arithmetic(self, node: Arithmetic) -> str:
        left, right = self.emit(node.left), self.emit(node.right)
        if node.operator == "+" and node.type is CelType.STRING:
            return f"({left} || {right})"
        if node.operator in "/%":
            # Division by zero is undefined (NULL), not a failed query.
            return f"({left} {node.operator} NULLIF({right}, 0))"
        return f"({left} {node.operator} {right})"

    def _call(self, node: Call) -> str:
        receiver = self.emit(node.receiver)
        if node.function == "size":
            return f"char_length({receiver})" if node.receiver.type is CelType.STRING else f"cardinality({receiver})"
        assert node.argument is not None
        argument = self.emit(node.argument)
        if node.function == "startsWith":
            return f"starts_with({receiver}, {argument})"
        if node.function == "endsWith":
            return f"(right({receiver}, char_length({argument})) = {argument})"
        return f"(strpos({receiver}, {argument}) > 0)"


def _double_literal(node: Node) -> float | None:
    """The value of a double literal, or of a negated one; None for anything else."""
    if isinstance(node, Negate):
        inner = _double_literal(node.operand)
        return -inner if inner is not None else None
    if isinstance(node, Literal) and node.type is CelType.DOUBLE and isinstance(node.value, float):
        return node.value
    return None
