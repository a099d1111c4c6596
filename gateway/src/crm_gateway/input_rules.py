"""What the services require of request bodies, in the terms a JSON Schema can state.

The models in schemas.py give a message's shape; these rules add what the owning service
refuses (required fields, canonical forms, lengths, ranges), so that the OpenAPI document
describes a body the service accepts and the gateway refuses the rest itself, every bad field
at once, before a call. Each rule restates the contract's comment on the field (`protos/`) and
the service's check (e.g. `crm_profile.customers.rules.validate`); `test_gateway_input_rules`
posts bodies valid by the document to the real service to keep the two in step. Rules a schema
cannot state (a PRC identity card's check character, a date in the past, declared attributes)
stay with the service.

Forms are the canonical ones (upper-case country codes and document numbers, no surrounding
spaces): the service normalises a lenient value, the gateway asks for the form it would store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldRule:
    """`required`: present and not null. `refused`: enum values the service refuses (usually
    the zero value, "not given"). `constraints`: pydantic `Field` arguments (pattern, max_length,
    ge, le; on a list, its length). `item_constraints`: the same for each item of a list."""

    required: bool = False
    refused: frozenset[str] = frozenset()
    constraints: Mapping[str, Any] = field(default_factory=dict)
    item_constraints: Mapping[str, Any] = field(default_factory=dict)


COUNTRY = r"^[A-Z]{2}$"
COUNTRY_RULE = FieldRule(constraints={"pattern": COUNTRY})
CUSTOMER_NAME = FieldRule(required=True, constraints={"pattern": r"^customers/[A-Za-z0-9_-]{1,64}$"})
SHORT_CODE = FieldRule(constraints={"pattern": r"^[a-z0-9_]{1,64}$"})
NOT_BLANK = r"\S"

# Message full name -> field name -> rule.
INPUT_RULES: Mapping[str, Mapping[str, FieldRule]] = {
    "crm.profile.v1.Customer": {
        "customer_id": FieldRule(constraints={"pattern": r"^[A-Za-z0-9_-]{1,64}$"}),
        "customer_type": FieldRule(required=True, refused=frozenset({"CUSTOMER_TYPE_UNSPECIFIED"})),
        "full_name": FieldRule(required=True, constraints={"pattern": r"\S", "max_length": 200}),
        "nationality": COUNTRY_RULE,
        "mobile_phone": FieldRule(constraints={"pattern": r"^\+[1-9][0-9]{7,14}$"}),
        "email": FieldRule(constraints={"pattern": r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$", "max_length": 254}),
        "occupation": FieldRule(constraints={"max_length": 100}),
        "relationship_manager_id": FieldRule(constraints={"max_length": 64}),
        "branch_id": FieldRule(constraints={"max_length": 32}),
        "preferred_language": FieldRule(constraints={"pattern": r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"}),
        "attributes": FieldRule(constraints={"max_length": 200}),
        "external_ids": FieldRule(constraints={"max_length": 20}),
    },
    # crm_feedback.complaints.rules.validate_draft
    "crm.feedback.v1.Complaint": {
        "customer": CUSTOMER_NAME,
        "channel": FieldRule(required=True, refused=frozenset({"CHANNEL_UNSPECIFIED"})),
        "description": FieldRule(required=True, constraints={"pattern": NOT_BLANK, "max_length": 4000}),
        "subcategory": SHORT_CODE,
        "product": SHORT_CODE,
        "branch_id": FieldRule(constraints={"max_length": 32}),
    },
    # crm_profile.consents.rules.validate_records (`text_version` is required on an opt-in: the
    # service checks that pair)
    "crm.profile.v1.ConsentRecord": {
        "purpose": FieldRule(required=True, refused=frozenset({"CONSENT_PURPOSE_UNSPECIFIED"})),
        "channel": FieldRule(required=True, refused=frozenset({"CONTACT_CHANNEL_UNSPECIFIED"})),
        "decision": FieldRule(required=True, refused=frozenset({"CONSENT_DECISION_UNSPECIFIED"})),
        "evidence": FieldRule(required=True),
    },
    "crm.profile.v1.ConsentEvidence": {
        "source": FieldRule(required=True, refused=frozenset({"CONSENT_SOURCE_UNSPECIFIED", "CONSENT_SOURCE_MERGE"})),
        "source_reference": FieldRule(constraints={"max_length": 128}),
        "effective_time": FieldRule(required=True),
        "text_version": FieldRule(constraints={"pattern": r"^[A-Za-z0-9._-]{1,64}$"}),
        "recorded_by": FieldRule(required=True, constraints={"pattern": NOT_BLANK, "max_length": 64}),
    },
    # crm_campaign.engagement.rules.validate_response
    "crm.campaign.v1.OfferResponse": {
        "customer": CUSTOMER_NAME,
        "offer": FieldRule(required=True, constraints={
            "pattern": r"^campaigns/[A-Za-z0-9_-]{1,64}/offers/[A-Za-z0-9_-]{1,64}$"}),
        "channel": FieldRule(required=True, refused=frozenset({"CHANNEL_UNSPECIFIED"})),
        "type": FieldRule(required=True, refused=frozenset({"RESPONSE_TYPE_UNSPECIFIED"})),
        "response_time": FieldRule(required=True),
        "decision_id": FieldRule(constraints={"max_length": 128}),
    },
    "crm.profile.v1.IdDocument": {
        # `type` is required when `number` is given: IdDocumentInput's dependent rule (schemas.py).
        "number": FieldRule(constraints={"pattern": r"^[A-Z0-9-]{4,32}$"}),
        "issuing_country": COUNTRY_RULE,
    },
    "crm.profile.v1.ExternalId": {
        "source_system": FieldRule(required=True, constraints={"pattern": r"^[a-z][a-z0-9-]{0,63}$"}),
        "id": FieldRule(required=True, constraints={"pattern": r"^[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?$"}),
    },
    "google.type.PostalAddress": {
        "region_code": FieldRule(required=True, constraints={"pattern": COUNTRY}),
        "address_lines": FieldRule(constraints={"max_length": 5}, item_constraints={"max_length": 200}),
    },
    # A real calendar date (google.type.Date's all-zero "unset" form is written by leaving it out).
    "google.type.Date": {
        "year": FieldRule(required=True, constraints={"ge": 1, "le": 9999}),
        "month": FieldRule(required=True, constraints={"ge": 1, "le": 12}),
        "day": FieldRule(required=True, constraints={"ge": 1, "le": 31}),
    },
}

# Message full name -> (field given, field then required, its refused values): a rule between two
# fields, stated as JSON Schema `dependentSchemas` and checked by the model.
DEPENDENT_RULES: Mapping[str, tuple[str, str, frozenset[str]]] = {
    "crm.profile.v1.IdDocument": ("number", "type", frozenset({"ID_DOCUMENT_TYPE_UNSPECIFIED"})),
}
