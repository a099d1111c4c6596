"""Pure decisions of identity resolution: valid rules, similarity and scores, survivorship. No I/O.

How fuzzy matching works on encrypted names (the design choice)
---------------------------------------------------------------
Names and addresses are sealed with AES-GCM, so the database cannot compare them. Exact rules
need no clear text: they compare the customer row's keyed blind indexes (`id_number_index`,
`mobile_phone_index`, `email_index`) in SQL. Fuzzy rules work in two steps:

1. Blocking, in SQL, on keys that reveal nothing without the service's keys:
   - the birth date, which is stored in clear (it is not one of the encrypted personal fields),
     widened to its DATE_TYPO variants (day and month swapped, any one digit changed), and
   - a *name key*: the name normalised (NFKC, case, accents, punctuation, token order) and
     reduced to a phonetic code per token (Soundex for Latin script; other scripts keep their
     characters, since romanising Chinese needs a pinyin dictionary we do not ship), then keyed
     with HMAC-SHA256 under the blind-index key (`kind="name_key"`). The background matcher
     keeps one per customer in `match_name_key`.
   The pool is capped (`MAX_POOL`), only ACTIVE customers of the same type take part.
2. Scoring, in the service: the pool's names and addresses are decrypted in memory and compared
   with the rule's similarity methods; nothing decrypted is stored, logged or returned.

What escapes blocking: a pair whose birth dates differ by more than one typo *and* whose names
sound different (or a customer created since the matcher last ran, through its name key only).
Decrypting a whole birth-date block instead of a name key was rejected: popular dates hold
thousands of customers at bank scale, a name key holds a handful.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from crm_profile.customers import rules as customer_rules
from crm_profile.customers.model import Customer, ExternalId, IdDocumentType, KycStatus
from crm_profile.identity.model import (
    ADDRESS,
    AUTO_MERGE,
    BIRTH_DATE,
    DATE_TYPO,
    EARLIEST,
    EXACT,
    FIXED_RULE,
    FULL_NAME,
    JARO_WINKLER,
    LEVENSHTEIN,
    MOST_COMPLETE,
    MOST_RECENT,
    MOST_RECENTLY_CONFIRMED,
    MOST_TRUSTED_SOURCE,
    SOURCE,
    SURVIVOR,
    TOKEN_SET,
    FieldLineage,
    FieldSimilarity,
    FuzzyCriteria,
    IdDocumentKey,
    Identifier,
    MatchAction,
    MatchKey,
    MatchRule,
    SimilarityMethod,
    SurvivorshipRule,
    SurvivorshipStrategy,
)
from crmkit.errors import InvalidArgument
from crmkit.validation import Violations

MATCH_RULE_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
# The values a request may set (UNSPECIFIED is unset, not a choice).
MATCH_KEYS = frozenset(MatchKey) - {MatchKey.UNSPECIFIED}
ACTIONS = frozenset(MatchAction) - {MatchAction.UNSPECIFIED}
STRATEGIES = frozenset(SurvivorshipStrategy) - {SurvivorshipStrategy.UNSPECIFIED}
DEFAULT_STRATEGIES = frozenset({0, SURVIVOR, SOURCE, MOST_RECENT, MOST_RECENTLY_CONFIRMED})
METHODS_BY_FIELD: Mapping[int, frozenset[int]] = {
    FULL_NAME: frozenset({EXACT, JARO_WINKLER, LEVENSHTEIN}),
    BIRTH_DATE: frozenset({EXACT, DATE_TYPO}),
    ADDRESS: frozenset({EXACT, LEVENSHTEIN, TOKEN_SET}),
}
MAX_COMPARISONS = 3
MAX_POOL = 500
MAX_DISMISS_REASON = 500
RULE_PATHS = frozenset({"display_name", "description", "disabled", "priority", "exact", "fuzzy", "action",
                        "survivorship_rules"})

# Customer fields a merge chooses between, by request path -> domain fields moved together.
MERGE_FIELDS: dict[str, tuple[str, ...]] = {
    "full_name": ("full_name",),
    "birth_date": ("birth_date",),
    "gender": ("gender",),
    "nationality": ("nationality",),
    "id_document": ("id_type", "id_number", "id_issuing_country", "id_expires_on"),
    "mobile_phone": ("mobile_phone",),
    "email": ("email",),
    "address": ("address",),
    "occupation": ("occupation",),
    "kyc_status": ("kyc_status",),
    "relationship_manager_id": ("relationship_manager_id",),
    "branch_id": ("branch_id",),
    "onboarded_on": ("onboarded_on",),
    "closed_on": ("closed_on",),
    "preferred_language": ("preferred_language",),
}
RISK_TOLERANCE = "risk_tolerance"


class FieldDefault(NamedTuple):
    strategy: int
    # Whether a request's `default_strategy` replaces it. Rules that follow from what the field
    # means (when the relationship began, how far KYC got) change only when the field is named.
    yields_to_default_strategy: bool = True


# How a merge chooses each field when the request names no rule for it (issue 9 #12: one
# most-recent rule for everything moved the start of a relationship to the duplicate's later
# onboarding). `risk_tolerance` is not here: the more conservative always wins.
SURVIVORSHIP_DEFAULTS: Mapping[str, FieldDefault] = {
    # What the customer tells the bank about themselves: the value they most recently gave or
    # confirmed as correct (`ConfirmFields`), whichever record it is on.
    "full_name": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "birth_date": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "gender": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "nationality": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "id_document": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "mobile_phone": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "email": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "address": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "occupation": FieldDefault(MOST_RECENTLY_CONFIRMED),
    "preferred_language": FieldDefault(MOST_RECENTLY_CONFIRMED),
    # A finished check (verified, expired or rejected) says more than a pending one; between
    # two finished ones the later outcome stands.
    "kyc_status": FieldDefault(MOST_COMPLETE, yields_to_default_strategy=False),
    # The bank's own assignments: its latest decision.
    "relationship_manager_id": FieldDefault(MOST_RECENT),
    "branch_id": FieldDefault(MOST_RECENT),
    # The relationship began with the first of the two records.
    "onboarded_on": FieldDefault(EARLIEST, yields_to_default_strategy=False),
    # The merged holdings decide it after the choice (`holdings.rules.relationship_end`); this
    # rule only stands for customers without holdings.
    "closed_on": FieldDefault(MOST_RECENT),
}
# Strategies that suit only some fields.
STRATEGY_FIELDS: Mapping[int, frozenset[str]] = {
    EARLIEST: frozenset({"onboarded_on"}),
    MOST_COMPLETE: frozenset({"kyc_status"}),
}

# --- match rules -----------------------------------------------------------------------------


def validate_rule(rule: MatchRule, *, prefix: str = "match_rule.") -> Violations:
    v = Violations()
    v.pattern(rule.match_rule_id, f"{prefix}match_rule_id", MATCH_RULE_ID,
              "must be 1 to 63 characters matching ^[a-z][a-z0-9-]{0,62}$, e.g. exact-id-number")
    if v.required(rule.display_name.strip(), f"{prefix}display_name"):
        v.max_length(rule.display_name, f"{prefix}display_name", 100)
        v.text(rule.display_name, f"{prefix}display_name")
    v.max_length(rule.description, f"{prefix}description", 1000)
    v.text(rule.description, f"{prefix}description", multiline=True)
    v.check(1 <= rule.priority <= 1000, f"{prefix}priority", "is required: 1 (first) to 1000")
    v.enum(rule.action, f"{prefix}action", ACTIONS, "MatchAction",
           required="is required: MATCH_ACTION_SUGGEST or _AUTO_MERGE")
    if rule.exact_key is None and rule.fuzzy is None:
        v.add(f"{prefix}criteria", "is required: set exactly one of exact or fuzzy")
    if rule.exact_key is not None:
        v.enum(rule.exact_key, f"{prefix}exact.key", MATCH_KEYS, "MatchKey", required="is required: a known MatchKey")
    if rule.fuzzy is not None:
        _validate_fuzzy(rule.fuzzy, rule.action, f"{prefix}fuzzy.", v)
    if rule.survivorship_rules and v.check(rule.action == AUTO_MERGE, f"{prefix}survivorship_rules",
                                           "are only allowed on AUTO_MERGE rules"):
        validate_survivorship(rule.survivorship_rules, prefix=f"{prefix}survivorship_rules", violations=v)
    return v


def _validate_fuzzy(fuzzy: FuzzyCriteria, action: int, prefix: str, v: Violations) -> None:
    v.check(1 <= len(fuzzy.comparisons) <= MAX_COMPARISONS, f"{prefix}comparisons",
            f"must hold 1 to {MAX_COMPARISONS} comparisons")
    seen: set[int] = set()
    for i, c in enumerate(fuzzy.comparisons):
        at = f"{prefix}comparisons[{i}]"
        if v.enum(c.field, f"{at}.field", METHODS_BY_FIELD, "FuzzyField", required="is required: a known FuzzyField"):
            v.check(c.field not in seen, f"{at}.field", "compares a field an earlier comparison already compares")
            seen.add(c.field)
            allowed = METHODS_BY_FIELD[c.field]
            v.check(c.method in allowed, f"{at}.method",
                    f"does not suit the field; allowed: {', '.join(SimilarityMethod(m).name for m in sorted(allowed))}")
        v.check(0 < c.weight <= 100, f"{at}.weight", "must be greater than 0 and at most 100")
        v.check(0 <= c.min_similarity <= 1, f"{at}.min_similarity", "must be from 0 to 1")
    v.check(0 < fuzzy.review_threshold <= 1, f"{prefix}review_threshold",
            "is required: greater than 0 and at most 1")
    if action == AUTO_MERGE:
        v.check(fuzzy.review_threshold <= fuzzy.auto_merge_threshold <= 1 and fuzzy.auto_merge_threshold > 0,
                f"{prefix}auto_merge_threshold", "is required for AUTO_MERGE: from review_threshold to 1")
    else:
        v.check(fuzzy.auto_merge_threshold == 0, f"{prefix}auto_merge_threshold", "is only allowed on AUTO_MERGE rules")




def check_rule_mask(paths: Sequence[str]) -> None:
    v = Violations()
    v.update_mask(paths, RULE_PATHS)
    v.raise_if_any()


def apply_rule_update(current: MatchRule, changes: MatchRule, paths: Sequence[str]) -> MatchRule:
    updated = current
    for p in paths:
        if p == "exact":
            updated = dataclasses.replace(updated, exact_key=changes.exact_key, fuzzy=None)
        elif p == "fuzzy":
            updated = dataclasses.replace(updated, fuzzy=changes.fuzzy, exact_key=None)
        else:
            updated = dataclasses.replace(updated, **{p: getattr(changes, p)})
    return updated


def validate_survivorship(rules: Sequence[SurvivorshipRule], *, prefix: str = "survivorship_rules",
                          violations: Violations | None = None) -> Violations:
    v = violations if violations is not None else Violations()
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        at = f"{prefix}[{i}]"
        if rule.field in (RISK_TOLERANCE, "customer_id"):
            v.add(f"{at}.field", f"'{rule.field}' is decided by a fixed rule and cannot be named")
        elif v.check(rule.field in MERGE_FIELDS, f"{at}.field",
                     f"'{rule.field}' is not a mergeable Customer field; one of: {', '.join(sorted(MERGE_FIELDS))}"):
            v.check(rule.field not in seen, f"{at}.field", "has a rule already: at most one per field")
            seen.add(rule.field)
        if v.enum(rule.strategy, f"{at}.strategy", STRATEGIES, "SurvivorshipStrategy",
                  required="is required: a known SurvivorshipStrategy"):
            suited = STRATEGY_FIELDS.get(rule.strategy)
            v.check(suited is None or rule.field in suited, f"{at}.strategy",
                    f"{SurvivorshipStrategy(rule.strategy).name} suits only {', '.join(sorted(suited or ()))}")
        if rule.strategy == MOST_TRUSTED_SOURCE:
            v.check(bool(rule.source_priority), f"{at}.source_priority", "is required for MOST_TRUSTED_SOURCE")
        else:
            v.check(not rule.source_priority, f"{at}.source_priority", "is only allowed for MOST_TRUSTED_SOURCE")
    return v


def validate_merge_request(*, survivor_id: str, source_id: str, rules: Sequence[SurvivorshipRule],
                           default_strategy: int) -> None:
    """INVALID_ARGUMENT naming every bad field; reason `MERGE_INTO_SELF` when the two are one."""
    v = validate_survivorship(rules)
    v.check(default_strategy in DEFAULT_STRATEGIES, "default_strategy",
            "must be unspecified (each field's default), SURVIVOR, SOURCE, MOST_RECENT or MOST_RECENTLY_CONFIRMED")
    into_self = not v.check(survivor_id != source_id, "source_customer",
                            "must differ from name: a customer cannot be merged into itself")
    try:
        v.raise_if_any()
    except InvalidArgument as error:
        if into_self:
            raise InvalidArgument(error.violations, reason="MERGE_INTO_SELF") from None
        raise


# --- normalisation and blocking keys ----------------------------------------------------------

_ABBREVIATIONS = {
    "street": "st", "str": "st", "road": "rd", "avenue": "ave", "av": "ave", "boulevard": "blvd", "lane": "ln",
    "drive": "dr", "building": "bldg", "apartment": "apt", "flat": "apt", "unit": "apt", "floor": "fl",
    "room": "rm", "number": "no", "district": "dist", "north": "n", "south": "s", "east": "e", "west": "w",
    "楼": "fl", "室": "rm", "号": "no",
}


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(text: str) -> list[str]:
    """Words of a value: folded (width, case, accents), punctuation dropped, CJK characters apart."""
    folded = _fold(text)
    spaced = "".join(f" {ch} " if _is_cjk(ch) else (ch if ch.isalnum() else " ") for ch in folded)
    return spaced.split()


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def normalise_name(name: str) -> str:
    """Token order ignored: `Wei Li` and `LI Wei` compare equal."""
    return " ".join(sorted(tokens(name)))


def normalise_address(address: dict[str, Any]) -> str:
    parts = [*address.get("addressLines", []), address.get("sublocality", ""), address.get("locality", ""),
             address.get("administrativeArea", ""), address.get("postalCode", ""), address.get("regionCode", "")]
    return " ".join(_ABBREVIATIONS.get(t, t) for t in tokens(" ".join(p for p in parts if p)))


_SOUNDEX = {**dict.fromkeys("bfpv", "1"), **dict.fromkeys("cgjkqsxz", "2"), **dict.fromkeys("dt", "3"),
            "l": "4", **dict.fromkeys("mn", "5"), "r": "6"}


def soundex(word: str) -> str:
    first, code, last = word[0], [], _SOUNDEX.get(word[0], "")
    for ch in word[1:]:
        digit = _SOUNDEX.get(ch, "")
        if digit and digit != last:
            code.append(digit)
        if ch not in "hw":
            last = digit
    return (first + "".join(code) + "000")[:4]


def name_key(name: str) -> str:
    """The phonetic blocking key of a name (HMAC'd before it is stored or compared)."""
    words = tokens(name)
    coded = sorted(soundex(w) if w.isascii() and w.isalpha() else w for w in words)
    return " ".join(coded)


def date_typo_variants(day: date) -> set[date]:
    """The date, its day-month swap and every date one digit away (YYYYMMDD)."""
    found = {day}
    if day.day <= 12:
        with contextlib.suppress(ValueError):
            found.add(date(day.year, day.day, day.month))
    digits = day.strftime("%Y%m%d")
    for i in range(8):
        for d in "0123456789":
            if d == digits[i]:
                continue
            text = digits[:i] + d + digits[i + 1:]
            try:
                found.add(date(int(text[:4]), int(text[4:6]), int(text[6:])))
            except ValueError:
                continue
    return found


# --- similarity -------------------------------------------------------------------------------


def jaro_winkler(a: str, b: str, *, prefix_scale: float = 0.1) -> float:
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    window = max(len(a), len(b)) // 2 - 1
    a_matched, b_matched = [False] * len(a), [False] * len(b)
    matches = 0
    for i, ch in enumerate(a):
        for j in range(max(0, i - window), min(len(b), i + window + 1)):
            if not b_matched[j] and b[j] == ch:
                a_matched[i] = b_matched[j] = True
                matches += 1
                break
    if not matches:
        return 0.0
    a_chars = [ch for ch, m in zip(a, a_matched, strict=True) if m]
    b_chars = [ch for ch, m in zip(b, b_matched, strict=True) if m]
    transpositions = sum(x != y for x, y in zip(a_chars, b_chars, strict=True)) / 2
    jaro = (matches / len(a) + matches / len(b) + (matches - transpositions) / matches) / 3
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * prefix_scale * (1 - jaro)


def levenshtein(a: str, b: str) -> float:
    """1 minus the edit distance over the longer length."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return 1 - previous[-1] / max(len(a), len(b))


def token_set(a: str, b: str) -> float:
    """Jaccard overlap of the words."""
    left, right = set(a.split()), set(b.split())
    if not left or not right:
        return 0.0
    return len(left & right) / len(left | right)


def date_typo(a: date | None, b: date | None) -> float:
    if a is None or b is None:
        return 0.0
    if a == b:
        return 1.0
    return 0.8 if b in date_typo_variants(a) else 0.0


_TEXT_METHODS: dict[int, Callable[[str, str], float]] = {
    EXACT: lambda a, b: 1.0 if a and a == b else 0.0, JARO_WINKLER: jaro_winkler, LEVENSHTEIN: levenshtein,
    TOKEN_SET: token_set,
}


@dataclass(frozen=True)
class Comparable:
    """The normalised values a fuzzy rule compares, computed once per customer."""

    name: str
    birth_date: date | None
    address: str

    @classmethod
    def of(cls, customer: Customer) -> Comparable:
        return cls(normalise_name(customer.full_name), customer.birth_date, normalise_address(customer.address))


def similarity(field: int, method: int, a: Comparable, b: Comparable) -> float:
    if field == BIRTH_DATE:
        if method == DATE_TYPO:
            return date_typo(a.birth_date, b.birth_date)
        return 1.0 if a.birth_date is not None and a.birth_date == b.birth_date else 0.0
    left, right = (a.name, b.name) if field == FULL_NAME else (a.address, b.address)
    return _TEXT_METHODS[method](left, right)


def score(criteria: FuzzyCriteria, a: Comparable, b: Comparable) -> tuple[float, tuple[FieldSimilarity, ...]] | None:
    """The weighted score of a pair, None when a comparison falls below its floor."""
    total_weight = sum(c.weight for c in criteria.comparisons)
    weighted, found = 0.0, []
    for c in criteria.comparisons:
        s = similarity(c.field, c.method, a, b)
        if s < c.min_similarity:
            return None
        weighted += c.weight * s
        found.append(FieldSimilarity(c.field, round(s, 6)))
    return round(weighted / total_weight, 6), tuple(found)


def older_first(a: Customer, b: Customer) -> tuple[Customer, Customer]:
    """The pair in the order candidates name it, and AUTO_MERGE keeps: the older customer first."""
    def age(c: Customer) -> tuple[date, float, str]:
        return (c.onboarded_on or date.max, c.created_at.timestamp() if c.created_at else float("inf"), c.customer_id)

    return (a, b) if age(a) <= age(b) else (b, a)


# --- survivorship -----------------------------------------------------------------------------


def _values(customer: Customer, fields: Iterable[str]) -> tuple[Any, ...]:
    return tuple(getattr(customer, f) for f in fields)


def _empty(values: tuple[Any, ...]) -> bool:
    return all(v in (None, "", 0, {}) for v in values)


@dataclass(frozen=True)
class ValueOrigin:
    """Where a customer's value of one field came from (from the field history)."""

    changed_at: datetime | None = None
    confirmed_at: datetime | None = None
    source_system: str = ""


# Customer id -> merge field path -> origin of its value. Missing entries fall back to the
# record's `updated_at` and `source_system`.
Provenance = Mapping[str, Mapping[str, ValueOrigin]]


@dataclass(frozen=True)
class Survival:
    customer: Customer  # the survivor as the merge leaves it
    lineage: tuple[FieldLineage, ...]
    risk_tolerance_conflict: bool


def rule_for(path: str, named: Mapping[str, SurvivorshipRule], *, default_strategy: int) -> SurvivorshipRule:
    """The rule that chooses one field: the request's own rule for it, else the request's
    `default_strategy` where the field's default yields to it, else the field's default."""
    if path in named:
        return named[path]
    field_default = SURVIVORSHIP_DEFAULTS[path]
    if default_strategy and field_default.yields_to_default_strategy:
        return SurvivorshipRule(path, default_strategy)
    return SurvivorshipRule(path, field_default.strategy)


def survive(survivor: Customer, source: Customer, rules: Sequence[SurvivorshipRule], *,
            default_strategy: int, provenance: Provenance | None = None) -> Survival:
    """Choose each field's value. A set value beats an empty one whatever the strategy; the more
    conservative of two assessed risk tolerances always wins."""
    by_field = {r.field: r for r in rules}
    origins = provenance or {}

    def origin(customer: Customer, path: str) -> ValueOrigin:
        found = origins.get(customer.customer_id, {}).get(path)
        return ValueOrigin(
            changed_at=found.changed_at if found and found.changed_at else customer.updated_at,
            confirmed_at=found.confirmed_at if found else None,
            source_system=found.source_system if found and found.source_system
            else getattr(customer, "source_system", ""))

    changes: dict[str, Any] = {}
    lineage = []
    for path, fields in MERGE_FIELDS.items():
        mine, theirs = _values(survivor, fields), _values(source, fields)
        if mine == theirs:
            continue
        rule = rule_for(path, by_field, default_strategy=default_strategy)
        mine_origin, theirs_origin = origin(survivor, path), origin(source, path)
        if _empty(theirs):
            chosen = survivor
        elif _empty(mine):
            chosen = source
        else:
            chosen = source if _prefers_source(rule, (mine, mine_origin), (theirs, theirs_origin)) else survivor
        if chosen is source:
            changes.update(zip(fields, theirs, strict=True))
        kept = theirs_origin if chosen is source else mine_origin
        lineage.append(FieldLineage(field=path, chosen_from=chosen.customer_id, strategy=rule.strategy,
                                    source_system=kept.source_system, value_time=_latest(kept, rule.strategy)))
    risk_conflict = False
    if survivor.risk_tolerance != source.risk_tolerance:
        if survivor.risk_tolerance and source.risk_tolerance:
            risk_conflict = True
            chosen = survivor if survivor.risk_tolerance < source.risk_tolerance else source
        else:
            chosen = survivor if survivor.risk_tolerance else source
        changes[RISK_TOLERANCE] = chosen.risk_tolerance
        kept = origin(chosen, RISK_TOLERANCE)
        lineage.append(FieldLineage(field=RISK_TOLERANCE, chosen_from=chosen.customer_id, strategy=FIXED_RULE,
                                    source_system=kept.source_system, value_time=kept.changed_at))
    return Survival(dataclasses.replace(survivor, **changes), tuple(lineage), risk_conflict)


def _latest(origin: ValueOrigin, strategy: int) -> datetime | None:
    if strategy == MOST_RECENTLY_CONFIRMED and origin.confirmed_at is not None:
        return max(filter(None, (origin.changed_at, origin.confirmed_at)))
    return origin.changed_at


def _prefers_source(rule: SurvivorshipRule, survivor_side: tuple[tuple[Any, ...], ValueOrigin],
                    source_side: tuple[tuple[Any, ...], ValueOrigin]) -> bool:
    """Whether the strategy keeps the source's value over the survivor's (both set). Ties keep the survivor's."""
    (my_values, mine), (their_values, theirs) = survivor_side, source_side
    if rule.strategy == SURVIVOR:
        return False
    if rule.strategy == SOURCE:
        return True
    if rule.strategy == EARLIEST:
        return bool(their_values < my_values)
    if rule.strategy == MOST_COMPLETE:
        my_rank, their_rank = _kyc_completeness(my_values[0]), _kyc_completeness(their_values[0])
        if my_rank != their_rank:
            return their_rank > my_rank
        rule = SurvivorshipRule(rule.field, MOST_RECENT)
    if rule.strategy == MOST_TRUSTED_SOURCE:
        def rank(origin: ValueOrigin) -> int:
            priority = rule.source_priority
            return priority.index(origin.source_system) if origin.source_system in priority else len(priority)
        if rank(mine) != rank(theirs):
            return rank(theirs) < rank(mine)
    mine_time, theirs_time = _latest(mine, rule.strategy), _latest(theirs, rule.strategy)
    return mine_time is not None and theirs_time is not None and theirs_time > mine_time


def _kyc_completeness(status: int) -> int:
    return 0 if status == KycStatus.PENDING else 1


def restore_survivor(current: Customer, *, before: Customer, after: Customer) -> Customer:
    """The survivor after an unmerge: each field the merge changed goes back to its value before
    the merge, unless it has been changed since."""
    changes: dict[str, Any] = {}
    for fields in (*MERGE_FIELDS.values(), (RISK_TOLERANCE,)):
        now, merged, earlier = _values(current, fields), _values(after, fields), _values(before, fields)
        if now == merged and merged != earlier:
            changes.update(zip(fields, earlier, strict=True))
    return dataclasses.replace(current, **changes)


# --- lookup ---------------------------------------------------------------------------------

SOURCE_SYSTEM = re.compile(r"[a-z][a-z0-9-]{0,63}")
EXTERNAL_ID = re.compile(r"[\x21-\x7e]{1,128}")


def validate_identifier(identifier: Identifier) -> Identifier:
    """The identifier in the canonical form its blind index was made from; INVALID_ARGUMENT naming
    every bad field."""
    v = Violations()
    given = [identifier.id_document is not None, bool(identifier.mobile_phone), bool(identifier.email),
             identifier.external_id is not None]
    v.check(sum(given) == 1, "identifier", "is required: exactly one of id_document, mobile_phone, email, external_id")
    canonical = identifier
    if (doc := identifier.id_document) is not None:
        number = doc.number.strip().upper()
        v.enum(doc.type, "id_document.type", customer_rules.ID_TYPES, "IdDocumentType",
               required="is required: a known IdDocumentType")
        v.pattern(number, "id_document.number", customer_rules.ID_NUMBER,
                  "is required: 4 to 32 characters from A-Z 0-9 -")
        if doc.type == IdDocumentType.PASSPORT:
            v.required(doc.issuing_country, "id_document.issuing_country")
        if doc.issuing_country:
            v.pattern(doc.issuing_country, "id_document.issuing_country", customer_rules.COUNTRY,
                      "must be an ISO 3166-1 alpha-2 code, e.g. CN")
        canonical = dataclasses.replace(identifier, id_document=IdDocumentKey(doc.type, number, doc.issuing_country))
    if identifier.mobile_phone:
        v.pattern(identifier.mobile_phone.strip(), "mobile_phone", customer_rules.E164_PHONE,
                  "must be in E.164 form: + then 8 to 15 digits, e.g. +8613812345678")
        canonical = dataclasses.replace(canonical, mobile_phone=identifier.mobile_phone.strip())
    if identifier.email:
        email = identifier.email.strip().lower()
        v.pattern(email, "email", customer_rules.EMAIL, "must be an e-mail address like name@example.com")
        canonical = dataclasses.replace(canonical, email=email)
    if (external := identifier.external_id) is not None:
        v.pattern(external.source_system, "external_id.source_system", SOURCE_SYSTEM,
                  "is required: 1 to 64 characters matching ^[a-z][a-z0-9-]{0,63}$")
        v.pattern(external.id, "external_id.id", EXTERNAL_ID, "is required: 1 to 128 printable ASCII characters")
        canonical = dataclasses.replace(canonical, external_id=ExternalId(external.source_system, external.id))
    v.raise_if_any()
    return canonical
