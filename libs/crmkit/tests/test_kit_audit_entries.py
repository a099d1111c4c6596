"""Audit entries take the caller's roles and method from the call being served; recipe 2 hashes
every field of a record by the serialisation the contract documents, while records hashed by
recipe 1 before it still verify."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime

import pytest

from crmkit.audit import DENIED, GENESIS_HASH, LEGACY_RECIPE, AuditEntry, record_hash
from crmkit.auth import Principal, Role, bind_method, bind_principal, reset_method, reset_principal

AT = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


def entry(**fields: object) -> AuditEntry:
    values: dict[str, object] = {"principal": "rm-7", "action": "customer.read", "resource_name": "customers/C1",
                                 "purpose": "CUSTOMER_SERVICE", "justification": "counter", "trace_id": "ab"}
    values.update(fields)
    return AuditEntry(**values)  # type: ignore[arg-type]


def test_an_entry_made_in_a_call_names_the_callers_roles_and_the_method() -> None:
    principal = bind_principal(Principal("rm-7", frozenset({Role.RELATIONSHIP_MANAGER, Role.ANALYST})))
    method = bind_method("/crm.profile.v1.ProfileService/GetCustomer")
    try:
        made = entry()
    finally:
        reset_method(method)
        reset_principal(principal)
    assert made.actor_roles == ("analyst", "relationship_manager")
    assert made.method == "/crm.profile.v1.ProfileService/GetCustomer"
    outside = entry()  # background work: no caller
    assert (outside.actor_roles, outside.method) == ((), "")


def _string(value: str) -> bytes:
    return len(value.encode()).to_bytes(4, "big") + value.encode()


def test_recipe_two_is_the_documented_serialisation() -> None:
    """Written from audit_log.proto's comment, not from the kit's code."""
    made = entry(actor_roles=("relationship_manager",), method="/m", fields=("full_name", "mobile_phone"))
    body = b"".join([
        _string("changes"), _string("2026-12-05T09:30:00.000000Z"), _string("rm-7"),
        (1).to_bytes(4, "big") + _string("relationship_manager"), _string("/m"), _string("customer.read"),
        _string("customers/C1"), _string("CUSTOMER_SERVICE"), _string("counter"),
        (2).to_bytes(4, "big") + _string("full_name") + _string("mobile_phone"), _string("ALLOWED"), _string("ab"),
    ])
    assert record_hash(GENESIS_HASH, AT, made, chain_id="changes") == hashlib.sha256(GENESIS_HASH + body).digest()


@pytest.mark.parametrize("change", [
    {"outcome": DENIED}, {"fields": ("email",)}, {"actor_roles": ("admin",)}, {"method": "/other"},
    {"principal": "rm-8"}, {"action": "customer.update"}, {"resource_name": "customers/C2"},
    {"purpose": "RISK"}, {"justification": "x"}, {"trace_id": "cd"},
])
def test_the_hash_covers_every_field(change: dict[str, object]) -> None:
    made = entry(fields=("full_name",))
    digest = record_hash(GENESIS_HASH, AT, made, chain_id="changes")
    assert digest != record_hash(GENESIS_HASH, AT, dataclasses.replace(made, **change), chain_id="changes")
    assert digest != record_hash(GENESIS_HASH, AT, made, chain_id="reads:1")


def test_recipe_one_records_keep_their_hash_and_may_claim_no_refusal_nor_fields() -> None:
    body = json.dumps([AT.isoformat(), "rm-7", "customer.read", "customers/C1", "CUSTOMER_SERVICE", "counter", "ab"],
                      separators=(",", ":")).encode()
    assert (record_hash(GENESIS_HASH, AT, entry(), chain_id="changes", recipe=LEGACY_RECIPE)
            == hashlib.sha256(GENESIS_HASH + body).digest())
    assert record_hash(GENESIS_HASH, AT, entry(outcome=DENIED), chain_id="changes", recipe=LEGACY_RECIPE) is None
    assert record_hash(GENESIS_HASH, AT, entry(fields=("email",)), chain_id="changes", recipe=LEGACY_RECIPE) is None
    assert record_hash(GENESIS_HASH, AT, entry(), chain_id="changes", recipe=7) is None
