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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

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


def to_sql(rule: CheckedRule, columns: Mapping[str, str]) -> SqlCondition:
    """The rule as a condition over `columns` (variable -> trusted SQL expression of its column).

    Column types must match the catalogue: bigint/integer, double precision, text, boolean,
    timestamptz, text[] (and interval for durations).
    """
    missing = sorted(rule.variables - columns.keys())
    if missing:
        raise ValueError(f"no column for {', '.join(missing)}")
    compiler = _Compiler(columns)
    return SqlCondition(compiler.emit(rule.root), tuple(compiler.params))


class _Compiler:
    def __init__(self, columns: Mapping[str, str]) -> None:
        self.columns = columns
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
