"""ListContactHistory: one customer's contacts, newest first, for the front line; a relationship
manager reads only their own book, and every read (or refusal) is audited."""

from __future__ import annotations

from datetime import datetime

from crm_campaign.book import rules as book_rules
from crm_campaign.book.repository import BookRepository
from crm_campaign.history import rules
from crm_campaign.history.model import HistoryEntry, HistoryFilter
from crm_campaign.history.repository import HistoryRepository
from crmkit.audit import DENIED, AuditEntry, AuditWriter
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import NotFound
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.resources import Purpose
from crmkit.validation import Violations

ACTION = "contact_history.read"


class ContactHistory:
    def __init__(self, *, repository: HistoryRepository, book: BookRepository, audit: AuditWriter,
                 page_tokens: PageTokens) -> None:
        self._repository = repository
        self._book = book
        self._audit = audit
        self._page_tokens = page_tokens

    async def list(self, *, uow: UnitOfWork, query: HistoryFilter, purpose: Purpose, page_size: int,
                   page_token: str, actor: Principal, violations: Violations | None = None) -> Page[HistoryEntry]:
        """`violations`: what the caller's mapping found already, reported with the rest."""
        rules.validate(query, purpose, violations if violations is not None else Violations()).raise_if_any()
        limit = clamp_page_size(page_size)
        token_query = {"customer": query.customer_id, "channel": query.channel, "campaign": query.campaign_id,
                       "from": _iso(query.contact_from), "until": _iso(query.contact_until)}
        after = self._page_tokens.decode(page_token, query=token_query)
        customer = f"customers/{query.customer_id}"
        audit = AuditEntry(principal=actor.subject, action=ACTION, resource_name=customer, purpose=purpose.purpose,
                           justification=purpose.justification)
        manager = await self._book.manager_of(uow, query.customer_id)
        if not book_rules.in_book(actor, manager):
            await self._audit.record(AuditEntry(principal=actor.subject, action=ACTION, resource_name=customer,
                                                purpose=purpose.purpose, justification=purpose.justification,
                                                outcome=DENIED))
            book_rules.check_in_book(actor, query.customer_id, manager)
        if not await self._repository.known(uow, query.customer_id):
            raise NotFound(f"customer {query.customer_id} is unknown to the campaign service",
                           reason="CUSTOMER_NOT_FOUND", metadata={"customer": customer})
        found = await self._repository.page(
            uow, query, after=(datetime.fromisoformat(after[0]), after[1]) if after is not None else None,
            limit=limit + 1)
        page = self._page_tokens.page(found, limit=limit, key=lambda c: [_iso(c.contact_at), c.entry_key],
                                      query=token_query)
        outcomes = await self._repository.outcomes(uow, query.customer_id, page.items)
        await self._audit.record(audit)
        return Page([rules.entry(contact, outcomes) for contact in page.items], page.next_page_token)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""
