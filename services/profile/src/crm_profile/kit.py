"""The collaborators every profile sub-domain shares, built once in `app.wire`."""

from __future__ import annotations

from dataclasses import dataclass

from crm_profile.customers.repository import CustomerRepository
from crm_profile.customers.vault import PersonalDataVault
from crmkit.audit import AuditWriter
from crmkit.db import Database
from crmkit.idempotency import IdempotencyKeys
from crmkit.outbox import Outbox
from crmkit.pagination import PageTokens


@dataclass(frozen=True)
class ProfileKit:
    db: Database
    vault: PersonalDataVault
    outbox: Outbox
    idempotency: IdempotencyKeys
    audit: AuditWriter
    page_tokens: PageTokens
    customers: CustomerRepository  # the customer rows, over `vault`: one for every sub-domain
