"""Resource names (AIP-122) and the audit purpose every personal-data request carries."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crm.common.v1 import audit_pb2
from crmkit.errors import FieldViolation, InvalidArgument
from crmkit.validation import Violations

# Ids inside resource names: what the services accept from callers and generate themselves.
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
MAX_JUSTIFICATION = 200


class ResourceName:
    """A name template such as `campaigns/{campaign_id}/offers/{offer_id}`."""

    def __init__(self, template: str) -> None:
        self.template = template
        parts = template.split("/")
        self._regex = re.compile("/".join(
            f"({ID_PATTERN})" if p.startswith("{") else re.escape(p) for p in parts))
        self.id_names = tuple(p.strip("{}") for p in parts if p.startswith("{"))

    def matches(self, name: str) -> bool:
        return self._regex.fullmatch(name) is not None

    def parse(self, name: str, field: str = "name") -> tuple[str, ...]:
        """The ids in `name`; INVALID_ARGUMENT naming `field` when it does not fit the template."""
        match = self._regex.fullmatch(name)
        if match is None:
            raise InvalidArgument([FieldViolation(field, f"must be a resource name like {self.template}")])
        return match.groups()

    def parse_one(self, name: str, field: str = "name") -> str:
        (only,) = self.parse(name, field)
        return only

    def format(self, *ids: str) -> str:
        values = dict(zip(self.id_names, ids, strict=True))
        return self.template.format(**values)


@dataclass(frozen=True)
class Purpose:
    """Why a caller reads or changes personal data: `CUSTOMER_SERVICE`, `RISK`, ... (audited)."""

    purpose: str
    justification: str = ""


def purpose_from(audit: audit_pb2.AuditContext, *, field: str = "audit",
                 violations: Violations | None = None) -> Purpose:
    """The request's AuditContext as a Purpose; a purpose is required, the justification short.

    With `violations`, problems are recorded there (for requests that report all fields at
    once); without, they raise INVALID_ARGUMENT at once.
    """
    v = violations if violations is not None else Violations()
    known = audit.purpose in audit_pb2.AccessPurpose.values() and audit.purpose != 0
    v.check(known, f"{field}.purpose", "is required: say why the customer's data is needed, "
            "e.g. ACCESS_PURPOSE_CUSTOMER_SERVICE")
    v.max_length(audit.justification, f"{field}.justification", MAX_JUSTIFICATION)
    if violations is None:
        v.raise_if_any()
    name = audit_pb2.AccessPurpose.Name(audit.purpose) if known else ""
    return Purpose(name.removeprefix("ACCESS_PURPOSE_"), audit.justification)
