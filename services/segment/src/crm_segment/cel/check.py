"""Parse a rule with cel-python's parser and type-check it against a catalogue into typed nodes.

The first problem found raises `InvalidRule` naming its position and reason. What a rule may
use is the list in this package's docstring; everything else CEL has is refused here, so the
two compilers only ever see what they can translate faithfully.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import celpy
from celpy.evaluation import celstr
from lark import Token, Tree

from crm_segment.cel.model import (
    ELEMENT_OF,
    LIST_OF,
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

INT_MIN, INT_MAX = -(2**63), 2**63 - 1

_COMPARISONS = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
                "relation_eq": "==", "relation_ne": "!="}
_ARITHMETIC = {"addition_add": "+", "addition_sub": "-", "multiplication_mul": "*", "multiplication_div": "/",
               "multiplication_mod": "%"}
_ORDERED = frozenset({CelType.BOOL, CelType.INT, CelType.DOUBLE, CelType.STRING, CelType.TIMESTAMP,
                      CelType.DURATION})
_NUMBERS = frozenset({CelType.INT, CelType.DOUBLE})
# (operator, left, right) -> result; CEL has no implicit conversions, so neither do we.
_ARITHMETIC_TYPES: dict[tuple[str, CelType, CelType], CelType] = {
    **{(op, t, t): t for op in "+-*/" for t in _NUMBERS},
    ("%", CelType.INT, CelType.INT): CelType.INT,
    ("+", CelType.STRING, CelType.STRING): CelType.STRING,
    ("+", CelType.TIMESTAMP, CelType.DURATION): CelType.TIMESTAMP,
    ("+", CelType.DURATION, CelType.TIMESTAMP): CelType.TIMESTAMP,
    ("+", CelType.DURATION, CelType.DURATION): CelType.DURATION,
    ("-", CelType.TIMESTAMP, CelType.TIMESTAMP): CelType.DURATION,
    ("-", CelType.TIMESTAMP, CelType.DURATION): CelType.TIMESTAMP,
    ("-", CelType.DURATION, CelType.DURATION): CelType.DURATION,
}
_STRING_METHODS = frozenset({"startsWith", "endsWith", "contains"})
_LITERAL_CONVERSIONS = frozenset({"timestamp", "duration"})
_TYPE_WORDS = {CelType.BOOL: "bool", CelType.INT: "int", CelType.DOUBLE: "double", CelType.STRING: "string",
               CelType.TIMESTAMP: "timestamp", CelType.DURATION: "duration", CelType.LIST_STRING: "list<string>",
               CelType.LIST_INT: "list<int>", CelType.LIST_DOUBLE: "list<double>"}
_PASS_THROUGH = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication",
                           "unary", "member", "primary", "paren_expr"})


def type_word(kind: CelType) -> str:
    return _TYPE_WORDS[kind]


def check(rule: str, catalogue: Mapping[str, CelType]) -> CheckedRule:
    """The typed form of `rule` over the variables of `catalogue`; raises `InvalidRule`."""
    try:
        tree = celpy.CELParser().parse(rule)
    except celpy.CELParseError as error:
        raise InvalidRule(syntax_error(rule, error)) from None
    checker = _Checker(catalogue)
    try:
        root = checker.lower(tree)
    except RecursionError:
        raise InvalidRule(RuleError("TOO_DEEP", "the rule nests too deeply")) from None
    if root.type is not CelType.BOOL:
        line, column = _position(tree)
        raise InvalidRule(RuleError("NOT_BOOLEAN", f"the rule must be a condition (bool), not {type_word(root.type)}",
                                    line, column))
    return CheckedRule(rule=rule, root=root, variables=frozenset(checker.variables))


def syntax_error(rule: str, error: celpy.CELParseError) -> RuleError:
    cause = error.__context__
    line, column = error.line or 0, error.column or 0
    token = getattr(cause, "token", None)
    char = getattr(cause, "char", None)
    if token is not None and token.type == "$END":
        lines = rule.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        message = "the rule ends too early"
    elif token is not None:
        message = f"unexpected {token.value!r}"
    elif char is not None:
        message = f"unexpected character {char!r}"
    else:
        message = "the rule does not parse"
    return RuleError("SYNTAX_ERROR", message, line, column)


def _position(node: Tree | Token) -> tuple[int, int]:
    """Line and column of a subtree: its meta when the parser kept one, else its first positioned token."""
    if isinstance(node, Token):
        return node.line or 0, node.column or 0
    if not node.meta.empty and getattr(node.meta, "line", None):
        return node.meta.line, node.meta.column
    for child in node.children:
        line, column = _position(child)
        if line:
            return line, column
    return 0, 0


def _fail(node: Tree | Token, reason: str, message: str) -> InvalidRule:
    line, column = _position(node)
    return InvalidRule(RuleError(reason, message, line, column))


class _Checker:
    def __init__(self, catalogue: Mapping[str, CelType]) -> None:
        self.catalogue = catalogue
        self.variables: set[str] = set()
        self._rules: dict[str, Callable[[Tree], Node]] = {
            "expr": self._conditional, "conditionalor": self._logical, "conditionaland": self._logical,
            "relation": self._relation, "addition": self._arithmetic, "multiplication": self._arithmetic,
            "unary": self._unary, "literal": self._literal, "ident": self._ident, "ident_arg": self._global_call,
            "member_dot_arg": self._method_call, "list_lit": self._standalone_list,
        }

    def lower(self, node: Tree | Token) -> Node:
        while isinstance(node, Tree) and node.data in _PASS_THROUGH and len(node.children) == 1:
            node = node.children[0]
        if isinstance(node, Token):  # pragma: no cover - the grammar wraps every token in a rule
            raise _fail(node, "SYNTAX_ERROR", f"unexpected {node.value!r}")
        handler = self._rules.get(node.data)
        if handler is None:
            raise _fail(node, "UNSUPPORTED_SYNTAX", _UNSUPPORTED.get(node.data, "this construct is not available "
                                                                               "in segment rules"))
        return handler(node)

    # --- operators ---------------------------------------------------------------------------

    def _conditional(self, node: Tree) -> Node:
        condition, then, otherwise = (self.lower(c) for c in node.children)
        self._expect(node.children[0], condition, CelType.BOOL, "the condition of `?:`")
        if then.type is not otherwise.type:
            raise _fail(node.children[2], "TYPE_MISMATCH", f"both branches of `?:` must have one type, not "
                                                           f"{type_word(then.type)} and {type_word(otherwise.type)}")
        return Conditional(then.type, condition, then, otherwise)

    def _logical(self, node: Tree) -> Node:
        left, right = (self.lower(c) for c in node.children)
        operator = "||" if node.data == "conditionalor" else "&&"
        self._expect(node.children[0], left, CelType.BOOL, f"the left side of `{operator}`")
        self._expect(node.children[1], right, CelType.BOOL, f"the right side of `{operator}`")
        return Logical(CelType.BOOL, operator, left, right)

    def _relation(self, node: Tree) -> Node:
        operator_tree, right_tree = node.children
        assert isinstance(operator_tree, Tree)
        left_tree = operator_tree.children[0]
        if operator_tree.data == "relation_in":
            return self._in(left_tree, right_tree)
        operator = _COMPARISONS[operator_tree.data]
        left, right = self.lower(left_tree), self.lower(right_tree)
        if left.type is not right.type:
            raise _fail(right_tree, "TYPE_MISMATCH", f"cannot compare {type_word(left.type)} with "
                                                     f"{type_word(right.type)}{_numeric_hint(left, right)}")
        if left.type not in _ORDERED:
            raise _fail(left_tree, "TYPE_MISMATCH", f"{type_word(left.type)} values cannot be compared with "
                                                    f"`{operator}`; use `in` or size()")
        return Compare(CelType.BOOL, operator, left, right)

    def _in(self, item_tree: Tree | Token, container_tree: Tree | Token) -> Node:
        item = self.lower(item_tree)
        container = self.lower(container_tree)
        element = ELEMENT_OF.get(container.type)
        if element is None:
            raise _fail(container_tree, "TYPE_MISMATCH", f"the right side of `in` must be a list, not "
                                                         f"{type_word(container.type)}")
        if item.type is not element:
            raise _fail(item_tree, "TYPE_MISMATCH", f"{type_word(item.type)} cannot be in a "
                                                    f"{type_word(container.type)}{_numeric_hint(item, container)}")
        return In(CelType.BOOL, item, container)

    def _arithmetic(self, node: Tree) -> Node:
        operator_tree, right_tree = node.children
        assert isinstance(operator_tree, Tree)
        operator = _ARITHMETIC[operator_tree.data]
        left, right = self.lower(operator_tree.children[0]), self.lower(right_tree)
        result = _ARITHMETIC_TYPES.get((operator, left.type, right.type))
        if result is None:
            raise _fail(right_tree, "TYPE_MISMATCH", f"`{operator}` does not apply to {type_word(left.type)} and "
                                                     f"{type_word(right.type)}{_numeric_hint(left, right)}")
        if operator in "/%" and isinstance(right, Literal) and right.value == 0:
            raise _fail(right_tree, "DIVISION_BY_ZERO", "division by a literal zero never yields a value")
        return Arithmetic(result, operator, left, right)

    def _unary(self, node: Tree) -> Node:
        operator_tree, operand_tree = node.children
        assert isinstance(operator_tree, Tree)
        operand = self.lower(operand_tree)
        if operator_tree.data == "unary_not":
            self._expect(operand_tree, operand, CelType.BOOL, "the operand of `!`")
            return Not(CelType.BOOL, operand)
        if operand.type not in _NUMBERS:
            raise _fail(operand_tree, "TYPE_MISMATCH", f"`-` does not apply to {type_word(operand.type)}")
        return Negate(operand.type, operand)

    def _expect(self, where: Tree | Token, node: Node, expected: CelType, what: str) -> None:
        if node.type is not expected:
            raise _fail(where, "TYPE_MISMATCH", f"{what} must be {type_word(expected)}, not {type_word(node.type)}")

    # --- leaves ------------------------------------------------------------------------------

    def _ident(self, node: Tree) -> Node:
        token = node.children[0]
        assert isinstance(token, Token)
        name = str(token.value)
        kind = self.catalogue.get(name)
        if kind is None:
            raise _fail(token, "UNKNOWN_FEATURE", f'unknown feature "{name}"')
        self.variables.add(name)
        return Variable(kind, name)

    def _literal(self, node: Tree) -> Node:
        token = node.children[0]
        assert isinstance(token, Token)
        kind, value = _literal_value(token, node)
        return Literal(kind, value)

    def _standalone_list(self, node: Tree) -> Node:
        items = node.children[0].children if node.children and isinstance(node.children[0], Tree) else []
        if not items:
            raise _fail(node, "UNSUPPORTED_SYNTAX", "an empty list matches nothing; remove the condition")
        values: list[Literal] = []
        for item in items:
            lowered = self.lower(item)
            if not isinstance(lowered, Literal):
                raise _fail(item, "UNSUPPORTED_SYNTAX", "list elements must be literals")
            values.append(lowered)
        element = values[0].type
        if element not in LIST_OF or any(v.type is not element for v in values):
            raise _fail(node, "TYPE_MISMATCH", "list elements must all be int, all double or all string")
        return ListLiteral(LIST_OF[element], tuple(v.value for v in values))

    # --- calls -------------------------------------------------------------------------------

    def _global_call(self, node: Tree) -> Node:
        name_token, *rest = node.children
        assert isinstance(name_token, Token)
        arguments = list(rest[0].children) if rest else []
        name = str(name_token.value)
        if name == "has":
            return self._has(name_token, arguments)
        if name == "size" and len(arguments) == 1:
            return self._size(arguments[0])
        if name in _LITERAL_CONVERSIONS and len(arguments) == 1:
            return self._conversion(name_token, name, arguments[0])
        raise _fail(name_token, "UNSUPPORTED_FUNCTION", f'function "{name}" with {len(arguments)} argument(s) is '
                                                        "not available in segment rules")

    def _method_call(self, node: Tree) -> Node:
        receiver_tree, name_token, *rest = node.children
        assert isinstance(name_token, Token)
        arguments = list(rest[0].children) if rest else []
        name = str(name_token.value)
        if name == "size" and not arguments:
            return self._size(receiver_tree)
        if name in _STRING_METHODS and len(arguments) == 1:
            receiver, argument = self.lower(receiver_tree), self.lower(arguments[0])
            self._expect(receiver_tree, receiver, CelType.STRING, f"the receiver of {name}()")
            self._expect(arguments[0], argument, CelType.STRING, f"the argument of {name}()")
            return Call(CelType.BOOL, name, receiver, argument)
        raise _fail(name_token, "UNSUPPORTED_FUNCTION", f'method "{name}" with {len(arguments)} argument(s) is '
                                                        "not available in segment rules")

    def _has(self, where: Token, arguments: list[Tree | Token]) -> Node:
        inner = arguments[0] if len(arguments) == 1 else None
        while isinstance(inner, Tree) and inner.data in _PASS_THROUGH and len(inner.children) == 1:
            inner = inner.children[0]
        if not (isinstance(inner, Tree) and inner.data == "ident"):
            raise _fail(where, "UNSUPPORTED_FUNCTION", "has() takes one feature name, e.g. has(age)")
        variable = self._ident(inner)
        assert isinstance(variable, Variable)
        return Has(CelType.BOOL, variable.name)

    def _size(self, argument_tree: Tree | Token) -> Node:
        argument = self.lower(argument_tree)
        if argument.type is not CelType.STRING and argument.type not in ELEMENT_OF:
            raise _fail(argument_tree, "TYPE_MISMATCH", f"size() takes a string or a list, not "
                                                        f"{type_word(argument.type)}")
        return Call(CelType.INT, "size", argument, None)

    def _conversion(self, where: Token, name: str, argument_tree: Tree | Token) -> Node:
        argument = self.lower(argument_tree)
        if not (isinstance(argument, Literal) and isinstance(argument.value, str)):
            raise _fail(where, "UNSUPPORTED_FUNCTION", f"{name}() takes a string literal, e.g. "
                                                       + ('timestamp("2025-01-31T00:00:00Z")' if name == "timestamp"
                                                          else 'duration("720h")'))
        try:
            if name == "timestamp":
                stamp: datetime = celpy.celtypes.TimestampType(argument.value)
                utc = stamp.astimezone(UTC)
                return Literal(CelType.TIMESTAMP, datetime(utc.year, utc.month, utc.day, utc.hour, utc.minute,
                                                           utc.second, utc.microsecond, tzinfo=UTC))
            span: timedelta = celpy.celtypes.DurationType(argument.value)
            return Literal(CelType.DURATION, timedelta(days=span.days, seconds=span.seconds,
                                                       microseconds=span.microseconds))
        except ValueError as error:
            raise _fail(argument_tree, "INVALID_LITERAL", f"{name}() cannot read {argument.value!r}: {error}") from None


def _literal_value(token: Token, node: Tree) -> tuple[CelType, Value]:
    text = str(token.value)
    if token.type == "INT_LIT":
        negative, digits = text.startswith("-"), text.lstrip("-")
        value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
        value = -value if negative else value
        if not INT_MIN <= value <= INT_MAX:
            raise _fail(node, "INVALID_LITERAL", f"{text} does not fit a 64-bit int")
        return CelType.INT, value
    if token.type == "FLOAT_LIT":
        return CelType.DOUBLE, float(text)
    if token.type in ("STRING_LIT", "MLSTRING_LIT"):
        return CelType.STRING, str(celstr(token))
    if token.type == "BOOL_LIT":
        return CelType.BOOL, text == "true"
    raise _fail(node, "UNSUPPORTED_SYNTAX", _UNSUPPORTED[token.type])


def _numeric_hint(left: Node, right: Node) -> str:
    kinds = {left.type, right.type} | {ELEMENT_OF.get(left.type), ELEMENT_OF.get(right.type)}
    if CelType.INT in kinds and CelType.DOUBLE in kinds:
        return " (CEL does not convert between int and double: write 30.0 for a double, 30 for an int)"
    return ""


_UNSUPPORTED = {
    "NULL_LIT": "null is not a value in segment rules; test presence with has(feature)",
    "BYTES_LIT": "bytes literals are not available in segment rules",
    "UINT_LIT": "unsigned literals are not available in segment rules; drop the u",
    "map_lit": "maps are not available in segment rules",
    "member_object": "message construction is not available in segment rules",
    "member_dot": "field selection is not available in segment rules: features are plain names",
    "member_index": "indexing is not available in segment rules",
    "dot_ident": "qualified names are not available in segment rules",
    "dot_ident_arg": "qualified functions are not available in segment rules",
}
