"""Pure decisions about customers: what a valid customer is, who sees what. No I/O here."""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from datetime import date
from typing import Any, Protocol

from crm_profile.customers.model import (
    ERASED,
    MERGED,
    Customer,
    CustomerType,
    CustomerView,
    Gender,
    IdDocumentType,
    KycStatus,
    RiskTolerance,
)
from crmkit import masking
from crmkit.auth import Principal, Role
from crmkit.errors import FailedPrecondition, PermissionDenied
from crmkit.validation import Violations

CUSTOMER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
COUNTRY = re.compile(r"[A-Z]{2}")
E164_PHONE = re.compile(r"\+[1-9][0-9]{7,14}")
ID_NUMBER = re.compile(r"[A-Z0-9-]{4,32}")
# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is the mail
# system's job; this catches typing errors at the counter.
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

CUSTOMER_TYPES = frozenset(CustomerType) - {CustomerType.UNSPECIFIED}
GENDERS = frozenset(Gender)
ID_TYPES = frozenset(IdDocumentType) - {IdDocumentType.UNSPECIFIED}
KYC_STATUSES = frozenset(KycStatus)
RISK_TOLERANCES = frozenset(RiskTolerance)

# Domain field -> the request's field path, for error messages that name what the caller sent.
FIELD_PATHS = {
    "id_type": "id_document.type",
    "id_number": "id_document.number",
    "id_issuing_country": "id_document.issuing_country",
    "id_expires_on": "id_document.expires_on",
}

# Fields an update may name (by request path); everything else is immutable or output only.
UPDATABLE_PATHS = frozenset({
    "customer_type", "full_name", "birth_date", "gender", "nationality", "id_document",
    "mobile_phone", "email", "address", "occupation", "kyc_status", "risk_tolerance",
    "relationship_manager_id", "branch_id", "onboarded_on", "closed_on", "preferred_language",
    "attributes", "external_ids",
})

# The core fields of the classes masked by role (`crmkit.masking.DISCLOSURE` decides how each
# role sees each class). Attribute values of an encrypted class follow SPECIAL_CATEGORY, the
# strictest: a value does not carry its class, only that it is personal.
FIELD_CLASSES = {
    "full_name": masking.IDENTITY, "birth_date": masking.IDENTITY, "id_number": masking.IDENTITY,
    "mobile_phone": masking.CONTACT, "email": masking.CONTACT, "address": masking.CONTACT,
}
ATTRIBUTE_CLASS = masking.SPECIAL_CATEGORY

# Roles that see every protected class in clear: they serve or protect this customer.
CLEAR_READERS = frozenset(role for role, classes in masking.DISCLOSURE.items()
                          if all(how is masking.Disclosure.CLEAR for how in classes.values()))

_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"


# Some twenty paths, each asked for on every validated customer (per row of a bulk import); bounded,
# as any caller may ask.
@functools.lru_cache(maxsize=128)
def path(field: str, prefix: str = "customer.") -> str:
    return prefix + FIELD_PATHS.get(field, field)


def is_valid_cn_resident_id(number: str) -> bool:
    """PRC resident identity card: 17 digits and an ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(map(operator.mul, map(int, number[:17]), _CN_ID_WEIGHTS))
    return _CN_ID_CHECK[total % 11] == number[17]


def validate(customer: Customer, *, today: date, violations: Violations | None = None) -> Violations:
    """Record every rule the customer breaks, each under the field path the caller used."""
    v = violations or Violations()
    if v.required(customer.customer_id, path("customer_id")):
        v.pattern(customer.customer_id, path("customer_id"), CUSTOMER_ID,
                  "must be 1 to 64 characters from A-Z a-z 0-9 _ -")
    v.enum(customer.customer_type, path("customer_type"), CUSTOMER_TYPES, "CustomerType",
           required="is required: CUSTOMER_TYPE_INDIVIDUAL or CUSTOMER_TYPE_ORGANISATION")
    name = customer.full_name.strip()
    if v.required(name, path("full_name")):
        v.max_length(name, path("full_name"), 200)
        v.text(name, path("full_name"))
    if customer.birth_date is not None:
        v.check(EARLIEST_BIRTH_DATE <= customer.birth_date <= today, path("birth_date"),
                "must be between 1900-01-01 and today")
    v.enum(customer.gender, path("gender"), GENDERS, "Gender")
    if customer.nationality:
        v.pattern(customer.nationality, path("nationality"), COUNTRY, "must be an ISO 3166-1 alpha-2 code, e.g. CN")
    _validate_id_document(customer, v)
    if customer.mobile_phone:
        v.pattern(customer.mobile_phone, path("mobile_phone"), E164_PHONE,
                  "must be in E.164 form: + then 8 to 15 digits, e.g. +8613812345678")
    v.text(customer.email, path("email"))
    if customer.email and v.max_length(customer.email, path("email"), 254):
        v.pattern(customer.email, path("email"), EMAIL, "must be an e-mail address like name@example.com")
    _validate_address(customer, v)
    v.max_length(customer.occupation, path("occupation"), 100)
    v.text(customer.occupation, path("occupation"))
    v.enum(customer.kyc_status, path("kyc_status"), KYC_STATUSES, "KycStatus")
    v.enum(customer.risk_tolerance, path("risk_tolerance"), RISK_TOLERANCES, "RiskTolerance")
    v.max_length(customer.relationship_manager_id, path("relationship_manager_id"), 64)
    v.text(customer.relationship_manager_id, path("relationship_manager_id"))
    v.max_length(customer.branch_id, path("branch_id"), 32)
    v.text(customer.branch_id, path("branch_id"))
    if customer.closed_on is not None and customer.onboarded_on is not None:
        v.check(customer.closed_on >= customer.onboarded_on, path("closed_on"), "must not be before onboarded_on")
    if customer.preferred_language:
        v.pattern(customer.preferred_language, path("preferred_language"), LANGUAGE_TAG,
                  "must be a BCP-47 language tag, e.g. zh-CN")
    return v


def _validate_id_document(customer: Customer, v: Violations) -> None:
    if not customer.id_number:
        return
    v.enum(customer.id_type, path("id_type"), ID_TYPES, "IdDocumentType",
           required="is required when a document number is given")
    if not v.pattern(customer.id_number, path("id_number"), ID_NUMBER,
                     "must be 4 to 32 characters from A-Z 0-9 -"):
        return
    if customer.id_issuing_country:
        v.pattern(customer.id_issuing_country, path("id_issuing_country"), COUNTRY,
                  "must be an ISO 3166-1 alpha-2 code, e.g. CN")
    if customer.id_type == IdDocumentType.NATIONAL_ID and customer.id_issuing_country == "CN":
        v.check(is_valid_cn_resident_id(customer.id_number), path("id_number"),
                "is not a valid PRC resident identity card number (18 characters, check character)")


def _validate_address(customer: Customer, v: Violations) -> None:
    if not customer.address:
        return
    lines = customer.address.get("addressLines", [])
    v.check(len(lines) <= 5, path("address") + ".address_lines", "must have at most 5 lines")
    v.check(all(len(line) <= 200 for line in lines), path("address") + ".address_lines",
            "each line must be at most 200 characters")
    for key, value in customer.address.items():
        field = _address_path(key)
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and not v.text(text, field):
                break  # one violation per field, however many lines break the rule
    region = customer.address.get("regionCode", "")
    v.check(bool(COUNTRY.fullmatch(region)), path("address") + ".region_code",
            "is required: an ISO 3166-1 alpha-2 code, e.g. CN")


# An address key (proto JSON, `postalCode`) -> its request path (`customer.address.postal_code`);
# a handful of keys, each asked for on every validated address (per row of a bulk import), where
# the regex substitution cost more than the rest of the address rules. Bounded, as any caller may ask.
@functools.lru_cache(maxsize=64)
def _address_path(key: str) -> str:
    return path("address") + "." + re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def normalise(customer: Customer) -> Customer:
    """Canonical forms, so blind indexes match however a value was typed."""
    return customer.replace(
        full_name=" ".join(customer.full_name.split()),
        id_number=customer.id_number.strip().upper(),
        email=customer.email.strip().lower(),
        mobile_phone=customer.mobile_phone.strip(),
        nationality=customer.nationality.strip().upper(),
    )


class Standing(Protocol):
    """What the book and liveness rules read of a customer: the full record, or the slim
    reference the holdings, events and features sub-domains load."""

    @property
    def customer_id(self) -> str: ...
    @property
    def relationship_manager_id(self) -> str: ...
    @property
    def state(self) -> int: ...
    @property
    def merged_into(self) -> str: ...


def check_book(principal: Principal, customer: Standing) -> None:
    """A relationship manager (with no broader role) sees only the customers they manage."""
    if principal.is_relationship_manager_only and customer.relationship_manager_id != principal.subject:
        raise PermissionDenied("customer is outside the caller's book", reason="OUTSIDE_BOOK")


def ensure_active(customer: Standing) -> None:
    """FAILED_PRECONDITION for a merged or erased customer: only GetCustomer (and UnmergeCustomers)
    may name one."""
    if customer.state == MERGED:
        raise FailedPrecondition(f"customer {customer.customer_id} was merged into {customer.merged_into}",
                                 reason="CUSTOMER_MERGED", metadata={"survivor": customer.merged_into})
    if customer.state == ERASED:
        raise FailedPrecondition(f"customer {customer.customer_id} was erased", reason="CUSTOMER_ERASED")


def view_for(principal: Principal, customer: Customer) -> CustomerView:
    """The customer as this caller may see it, class by class as `crmkit.masking.DISCLOSURE` says."""
    treatment = _treatment(principal.roles)
    changes: dict[str, object] = {}
    masked_fields: list[str] = []
    clear_fields: list[str] = []
    birth_year = 0
    for field, data_class in FIELD_CLASSES.items():
        value = getattr(customer, field)
        if not value:
            continue
        how = treatment[data_class]
        if how is masking.Disclosure.CLEAR:
            clear_fields.append(_PATHS[field])
            continue
        masked_fields.append(_PATHS[field])
        if field == "birth_date":
            changes[field] = None
            birth_year = value.year if how is masking.Disclosure.MASKED else 0
        else:
            changes[field] = _MASKS[field](value) if how is masking.Disclosure.MASKED else _EMPTY[field]
    personal = sorted(key for key, value in customer.attributes.items() if value.personal)
    if personal:
        if treatment[ATTRIBUTE_CLASS] is masking.Disclosure.CLEAR:
            clear_fields.extend(f"attributes.{key}" for key in personal)
        else:  # a typed value has no mask: it is left out of the map and named in masked_fields
            changes["attributes"] = {k: v for k, v in customer.attributes.items() if not v.personal}
            masked_fields.extend(f"attributes.{key}" for key in personal)
    shown = customer.replace(**changes) if changes else customer
    return CustomerView(shown, tuple(masked_fields), tuple(clear_fields), birth_year)


@functools.lru_cache(maxsize=64)
def _treatment(roles: frozenset[Role]) -> dict[str, masking.Disclosure]:
    return {data_class: masking.disclosure(roles, data_class) for data_class in masking.PROTECTED_CLASSES}


def written_paths(before: Customer | None, after: Customer) -> tuple[str, ...]:
    """The customer's field paths a write set or changed (`after` against `before`, or against
    nothing for a creation), as an audit record names them; values never."""
    earlier = before if before is not None else _BLANK
    paths = [path(name, "") for name in _AUDITED_FIELDS if getattr(after, name) != getattr(earlier, name)]
    keys = set(after.attributes) | (set(before.attributes) if before is not None else set())
    paths += [f"attributes.{key}" for key in sorted(keys) if before is None or
              before.attributes.get(key) != after.attributes.get(key)]
    return tuple(dict.fromkeys(paths))


def _mask_address(address: dict[str, object]) -> dict[str, object]:
    """Country and province only: a city beside a birth year narrows a customer down too far."""
    return {k: address[k] for k in ("regionCode", "administrativeArea") if k in address}


_PATHS = {f: FIELD_PATHS.get(f, f) for f in FIELD_CLASSES}  # as masked_fields names them
# Each takes the field's stored value (a string, or the address dict) and returns its mask.
_MASKS: dict[str, Callable[[Any], object]] = {
    "full_name": masking.mask_name,
    "id_number": masking.mask_identifier,
    "mobile_phone": masking.mask_phone,
    "email": masking.mask_email,
    "address": _mask_address,
}
_EMPTY: dict[str, object] = {"full_name": "", "id_number": "", "mobile_phone": "", "email": "", "address": {}}
# Fields a caller writes, in Customer order; id_document's parts are one path.
_AUDITED_FIELDS = tuple(name for name in (
    "customer_type", "full_name", "birth_date", "gender", "nationality", "id_type", "id_number",
    "id_issuing_country", "id_expires_on", "mobile_phone", "email", "address", "occupation", "kyc_status",
    "risk_tolerance", "relationship_manager_id", "branch_id", "onboarded_on", "closed_on", "preferred_language",
    "external_ids"))
_BLANK = Customer(customer_id="", customer_type=0, full_name="")  # what a creation is compared with


EXTERNAL_SYSTEM = re.compile(r"[a-z][a-z0-9-]{0,63}")
EXTERNAL_ID = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?")
MAX_EXTERNAL_IDS = 20


def validate_external_ids(customer: Customer, violations: Violations, prefix: str = "customer.") -> None:
    """Identifiers in other systems: at most 20, each (system, id) once, printable ASCII ids."""
    v = violations
    v.check(len(customer.external_ids) <= MAX_EXTERNAL_IDS, prefix + "external_ids",
            f"must have at most {MAX_EXTERNAL_IDS} entries")
    seen: set[tuple[str, str]] = set()
    for i, external in enumerate(customer.external_ids):
        path = f"{prefix}external_ids[{i}]"
        if v.required(external.source_system, path + ".source_system"):
            v.pattern(external.source_system, path + ".source_system", EXTERNAL_SYSTEM,
                      "must be 1 to 64 characters matching ^[a-z][a-z0-9-]{0,63}$")
        if v.required(external.id, path + ".id"):
            v.pattern(external.id, path + ".id", EXTERNAL_ID,
                      "must be 1 to 128 printable ASCII characters, not starting or ending with a space")
        v.check((external.source_system, external.id) not in seen, path, "repeats an earlier entry")
        seen.add((external.source_system, external.id))
