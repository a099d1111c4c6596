"""Audit entries take the caller's roles and method from the call being served, and their hash
covers them, while records made before they were kept still verify."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime

from crmkit.audit import GENESIS_HASH, AuditEntry, record_hash
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


def test_records_without_roles_or_method_keep_the_original_hash() -> None:
    body = json.dumps([AT.isoformat(), "rm-7", "customer.read", "customers/C1", "CUSTOMER_SERVICE", "counter", "ab"],
                      separators=(",", ":")).encode()
    assert record_hash(GENESIS_HASH, AT, entry()) == hashlib.sha256(GENESIS_HASH + body).digest()


def test_the_hash_covers_roles_and_method() -> None:
    made = entry(actor_roles=("relationship_manager",), method="/crm.profile.v1.ProfileService/GetCustomer")
    digest = record_hash(GENESIS_HASH, AT, made)
    assert digest != record_hash(GENESIS_HASH, AT, entry())
    assert digest != record_hash(GENESIS_HASH, AT, dataclasses.replace(made, actor_roles=("admin",)))
    assert digest != record_hash(GENESIS_HASH, AT, dataclasses.replace(
        made, method="/crm.profile.v1.ProfileService/ListCustomers"))
