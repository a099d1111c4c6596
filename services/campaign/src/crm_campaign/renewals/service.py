"""Renewal use cases, in the caller's unit of work."""

from __future__ import annotations

import dataclasses
from datetime import date

from crm_campaign.renewals.model import Renewal, RenewalFilter, RenewalSummary
from crm_campaign.renewals.repository import RenewalRepository
from crmkit.auth import Principal
from crmkit.clock import utc_now
from crmkit.db import UnitOfWork
from crmkit.pagination import Page, PageTokens, clamp_page_size


class Renewals:
    def __init__(self, *, repository: RenewalRepository, page_tokens: PageTokens) -> None:
        self._repository = repository
        self._page_tokens = page_tokens

    async def list(self, *, uow: UnitOfWork, where: RenewalFilter, page_size: int, page_token: str,
                   actor: Principal) -> tuple[Page[Renewal], RenewalSummary]:
        """A page of renewals and the totals over everything the filter matches. Relationship
        managers always get their own customers' only, whatever the filter says: the books' rule
        (`book.rules.in_book`) as a filter, on the books' manager (an unmanaged customer is in no book)."""
        if actor.is_relationship_manager_only:
            where = dataclasses.replace(where, relationship_manager_id=actor.subject)
        limit = clamp_page_size(page_size)
        query = {"customer": where.customer_id, "rm": where.relationship_manager_id,
                 "states": sorted(int(s) for s in where.states), "product": where.product_code,
                 "from": where.maturity_from, "to": where.maturity_to}
        after = self._page_tokens.decode(page_token, query=query)
        today = utc_now().date()
        found = await self._repository.page(
            uow, where, today=today, after=(date.fromisoformat(after[0]), after[1]) if after else None,
            limit=limit + 1)
        page = self._page_tokens.page(found, limit=limit, key=lambda r: [r.maturity_date.isoformat(), r.renewal_id],
                                      query=query)
        return page, await self._repository.summary(uow, where, today=today)
