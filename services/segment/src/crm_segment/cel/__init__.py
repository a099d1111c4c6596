"""Segment rules in CEL: one semantics, two compilers (SQL for batch, Python closures per event).

cel-python parses; `check` types the tree against a catalogue (variable -> `CelType`); `to_sql`
and `to_python` translate the checked tree. cel-python's evaluator is the reference the property
tests hold both compilers to (tests/cel/test_agreement.py).

What a rule may use (everything else CEL has is refused with a position and a reason):

- literals: int (decimal or hex), double, string (all CEL escapes), bool;
  `timestamp("RFC 3339")` and `duration("720h")` of a string literal;
  a list of literals of one type (int, double or string), only on the right of `in`
- variables: the catalogue's names; `has(name)` tests presence
- `&&`, `||`, `!`, `cond ? a : b`
- `==`, `!=` on bool, int, double, string, timestamp, duration (both sides one type)
- `<`, `<=`, `>`, `>=` on the same types (strings by code point)
- `+`, `-`, `*`, `/` on int or on double; `%` on int; unary `-`; string `+` string;
  timestamp - timestamp, timestamp +/- duration, duration +/- duration
- `x in list` (a list feature or a list literal)
- `size(x)` / `x.size()` on strings and lists; `s.startsWith(t)`, `s.endsWith(t)`, `s.contains(t)`

Not available: int/double mixing (as in CEL: write 30.0 or 30), uint, bytes, null, maps, field
selection, indexing, `matches` (RE2, Python and PostgreSQL regexes differ), the macros
(all, exists, exists_one, map, filter) and conversions other than the two literal ones.

Semantics of missing values. A feature absent from the input (or None / SQL NULL) is missing.
An expression that reads a missing value, or that errs (int division or remainder by zero,
int64 overflow), is *undefined*. Undefined propagates through every operator and function,
except that `false && x` is false and `true || x` is true whichever side is undefined (CEL's
error absorption), and `c ? a : b` only evaluates the branch it takes. `has(f)` is true when f
is present. A rule whose value is undefined selects nobody. So `age < 30` and `!(age >= 30)`
both leave out customers without an age; `!has(age) || age < 30` takes them in.

This is cel-python's behaviour with missing variables left out of the activation, read as
"error -> false" at the top, with two deliberate differences: double division by zero is
undefined (CEL gives an IEEE infinity, which no SQL value matches); and int64 overflow, which
is undefined in Python, fails the whole query in PostgreSQL. SQL evaluation assumes the
catalogue's column types (bigint, double precision, text, boolean, timestamptz, text[]).
"""

from crm_segment.cel.check import check
from crm_segment.cel.model import CelType, CheckedRule, InvalidRule, RuleError
from crm_segment.cel.to_python import to_python
from crm_segment.cel.to_sql import SqlCondition, to_sql

__all__ = ["CelType", "CheckedRule", "InvalidRule", "RuleError", "SqlCondition", "check", "to_python", "to_sql"]
