"""The checked form of a segment rule: typed nodes that both compilers walk, and rule errors.

A node is only ever built by `check`, so every node here is well typed: compilers never check
types again, they only translate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum


class CelType(IntEnum):
    BOOL = 1
    INT = 2
    DOUBLE = 3
    STRING = 4
    TIMESTAMP = 5
    DURATION = 6
    LIST_STRING = 7
    LIST_INT = 8
    LIST_DOUBLE = 9


LIST_OF = {CelType.STRING: CelType.LIST_STRING, CelType.INT: CelType.LIST_INT, CelType.DOUBLE: CelType.LIST_DOUBLE}
ELEMENT_OF = {lists: element for element, lists in LIST_OF.items()}

Value = bool | int | float | str | datetime | timedelta


@dataclass(frozen=True)
class RuleError:
    """One reason a rule cannot run; line and column are 1-based, 0 when the parser kept none."""

    reason: str
    message: str
    line: int = 0
    column: int = 0

    def describe(self) -> str:
        where = f"line {self.line}, column {self.column}: " if self.line else ""
        return f"{where}{self.message} ({self.reason})"


class InvalidRule(ValueError):
    """The rule does not parse, names an unknown feature, mixes types or calls what rules may not."""

    def __init__(self, error: RuleError) -> None:
        super().__init__(error.describe())
        self.error = error


@dataclass(frozen=True)
class Node:
    type: CelType


@dataclass(frozen=True)
class Literal(Node):
    value: Value


@dataclass(frozen=True)
class ListLiteral(Node):
    """A list of literals, only ever the right side of `in`."""

    values: tuple[Value, ...]


@dataclass(frozen=True)
class Variable(Node):
    name: str


@dataclass(frozen=True)
class Has(Node):
    name: str


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Negate(Node):
    operand: Node


@dataclass(frozen=True)
class Logical(Node):
    """`&&` or `||`."""

    operator: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    """`==`, `!=`, `<`, `<=`, `>`, `>=` between two values of one type."""

    operator: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Arithmetic(Node):
    """`+`, `-`, `*`, `/`, `%`; `type` is the result's."""

    operator: str
    left: Node
    right: Node


@dataclass(frozen=True)
class In(Node):
    item: Node
    container: Node


@dataclass(frozen=True)
class Call(Node):
    """`size`, `startsWith`, `endsWith` or `contains` on `receiver`."""

    function: str
    receiver: Node
    argument: Node | None


@dataclass(frozen=True)
class Conditional(Node):
    condition: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True)
class CheckedRule:
    """A rule that type-checked: its root (a bool) and the variables it reads."""

    rule: str
    root: Node
    variables: frozenset[str]
