"""Resource names (AIP-122) and the audit purpose every personal-data request carries."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from crm.common.v1 import audit_pb2
from crmkit.validation import Violations, unknown_enum

# Ids inside resource names: what the services accept from callers and generate themselves.
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
MAX_JUSTIFICATION = 200


class ResourceName:
    """A name template such as `campaigns/{campaign_id}/offers/{offer_id}`.

    `id_pattern` is what each id may be (the kit's `ID_PATTERN` unless a service's ids are
    narrower; a mapping by id name when the ids differ); `rule` is the violation's description
    when a name does not fit. A name whose id could never exist is bad input (INVALID_ARGUMENT
    naming the field), not a missing resource.
    """

    def __init__(self, template: str, *, id_pattern: str | Mapping[str, str] = ID_PATTERN,
                 rule: str | None = None) -> None:
        self.template = template
        parts = template.split("/")
        self.id_names = tuple(p.strip("{}") for p in parts if p.startswith("{"))
        patterns = id_pattern if isinstance(id_pattern, Mapping) else dict.fromkeys(self.id_names, id_pattern)
        self._regex = re.compile("/".join(
            f"(?P<{p.strip('{}')}>{patterns[p.strip('{}')]})" if p.startswith("{") else re.escape(p)
            for p in parts))
        self.rule = rule if rule is not None else f"must be a resource name like {template}"

    def matches(self, name: str) -> bool:
        return self._regex.fullmatch(name) is not None

    def ids_in(self, name: str) -> tuple[str, ...] | None:
        """The ids in `name`; None when it does not fit the template."""
        match = self._regex.fullmatch(name)
        return None if match is None else tuple(match.group(n) for n in self.id_names)

    def id_in(self, name: str) -> str | None:
        """The one id in `name` (templates with a single id); None when it does not fit."""
        ids = self.ids_in(name)
        return None if ids is None else ids[0]

    def check(self, name: str, field: str, violations: Violations, *, required: bool = False) -> bool:
        """Record a violation naming `field` when `name` does not fit (with `required`, "is required" when empty)."""
        if required and not violations.required(name, field):
            return False
        return violations.check(self.matches(name), field, self.rule)

    def parse(self, name: str, field: str = "name", *, required: bool = False) -> tuple[str, ...]:
        """The ids in `name`; INVALID_ARGUMENT naming `field` when it does not fit the template."""
        match = self._regex.fullmatch(name) if name else None
        if match is not None:  # the usual case, on every call naming a resource: one match, no violations
            return tuple(match.group(n) for n in self.id_names)
        violations = Violations()
        self.check(name, field, violations, required=required)
        violations.raise_if_any()
        ids = self.ids_in(name)
        assert ids is not None  # check() recorded a violation otherwise
        return ids

    def parse_one(self, name: str, field: str = "name", *, required: bool = False) -> str:
        (only,) = self.parse(name, field, required=required)
        return only

    def format(self, *ids: str) -> str:
        values = dict(zip(self.id_names, ids, strict=True))
        return self.template.format(**values)


@dataclass(frozen=True)
class Purpose:
    """Why a caller reads or changes personal data: `CUSTOMER_SERVICE`, `RISK`, ... (audited)."""

    purpose: str
    justification: str = ""
    # An AccessPurpose number the contract does not know (purpose is then ""), so that the
    # check can say so instead of asking for a purpose the caller did give.
    unknown_number: int = dataclasses.field(default=0, compare=False, repr=False)


PURPOSE_REQUIRED = "is required: say why the customer's data is needed, e.g. ACCESS_PURPOSE_CUSTOMER_SERVICE"


# AccessPurpose number -> its name without the prefix, read from the contract once (its
# `values()` builds a list on every call).
_PURPOSE_NAMES = {number: name.removeprefix("ACCESS_PURPOSE_")
                  for name, number in audit_pb2.AccessPurpose.items() if number}


def purpose_of(audit: audit_pb2.AuditContext) -> Purpose:
    """The request's AuditContext as a Purpose, unchecked: an unset or unknown purpose reads as ""."""
    number = audit.purpose
    if number == 0:
        return Purpose("", audit.justification)
    name = _PURPOSE_NAMES.get(number)
    if name is None:
        return Purpose("", audit.justification, unknown_number=number)
    return Purpose(name, audit.justification)


def check_purpose(purpose: Purpose, violations: Violations, *, field: str = "audit",
                  required: str = PURPOSE_REQUIRED) -> None:
    """Record what is wrong with a purpose: one is required (`required` says why), the justification short."""
    if purpose.unknown_number:
        violations.add(f"{field}.purpose", unknown_enum(purpose.unknown_number, "AccessPurpose"))
    else:
        violations.check(bool(purpose.purpose), f"{field}.purpose", required)
    violations.max_length(purpose.justification, f"{field}.justification", MAX_JUSTIFICATION)


def purpose_from(audit: audit_pb2.AuditContext, *, field: str = "audit",
                 violations: Violations | None = None) -> Purpose:
    """The request's AuditContext as a Purpose; a purpose is required, the justification short.

    With `violations`, problems are recorded there (for requests that report all fields at
    once); without, they raise INVALID_ARGUMENT at once.
    """
    purpose = purpose_of(audit)
    if violations is None and purpose.purpose and len(purpose.justification) <= MAX_JUSTIFICATION:
        return purpose  # the usual case, on every read of personal data: nothing to record
    v = violations if violations is not None else Violations()
    check_purpose(purpose, v, field=field)
    if violations is None:
        v.raise_if_any()
    return purpose
