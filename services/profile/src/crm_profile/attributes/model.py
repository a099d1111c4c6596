"""The custom-attribute catalogue and attribute values as the service's code sees them.

Plain values only: `api/attribute_messages.py` turns protos into these and back, `repository.py`
turns them into rows and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import IntEnum


class ValueType(IntEnum):
    """`AttributeValueType`; UNSPECIFIED marks a value whose member was not set."""

    UNSPECIFIED = 0
    STRING = 1
    INT = 2
    DECIMAL = 3
    BOOL = 4
    DATE = 5
    ENUM = 6


class DataClass(IntEnum):
    """`DataClass` of the proto contract: decides encryption and masking of values."""

    UNSPECIFIED = 0
    NON_PERSONAL = 1
    IDENTITY = 2
    CONTACT = 3
    DEMOGRAPHIC = 4
    FINANCIAL = 5
    TRANSACTION = 6
    BEHAVIOUR = 7
    CONSENT = 8
    SPECIAL_CATEGORY = 9
    AUDIT = 10


# Classes whose values are sealed by the vault and masked for callers who may not see them.
ENCRYPTED_CLASSES = frozenset({DataClass.IDENTITY, DataClass.CONTACT, DataClass.SPECIAL_CATEGORY})

AttributeScalar = str | int | Decimal | bool | date


@dataclass(frozen=True)
class AttributeValue:
    """One value of a custom attribute; `type` says which member the caller set.

    `personal` marks a value of an encrypted class (sealed at rest, masked by role); it is
    bookkeeping, not part of the value, so two values compare equal whatever it says.
    """

    type: ValueType
    value: AttributeScalar | None
    personal: bool = field(default=False, compare=False)

    def canonical(self) -> str:
        """The value as text: ISO dates, `true`/`false`, plain decimal notation."""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, date):
            return self.value.isoformat()
        if isinstance(self.value, Decimal):
            return format(self.value, "f")
        return "" if self.value is None else str(self.value)


@dataclass(frozen=True)
class AllowedValue:
    value: str
    display_name: str = ""


@dataclass(frozen=True)
class Validation:
    """Rules of an attribute's values; unset members impose nothing."""

    pattern: str = ""
    min_length: int = 0
    max_length: int = 0
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    max_fraction_digits: int = 0
    min_date: date | None = None
    max_date: date | None = None
    not_in_future: bool = False
    allowed_values: tuple[AllowedValue, ...] = ()


@dataclass
class AttributeDefinition:
    attribute_id: str
    display_name: str
    value_type: ValueType
    data_class: DataClass
    source_system: str
    description: str = ""
    validation: Validation = field(default_factory=Validation)
    completeness_expected: bool = False
    max_age: timedelta | None = None
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        return f"attributeDefinitions/{self.attribute_id}"

    @property
    def etag(self) -> str:
        return str(self.version)

    @property
    def encrypted(self) -> bool:
        return self.data_class in ENCRYPTED_CLASSES
