"""The early-warning list use case, in the caller's (read-only) unit of work."""

from __future__ import annotations

from dataclasses import replace

from crm_risk.early_warning import repository, rules
from crm_risk.early_warning.model import EarlyWarning, WarningFilter
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations


class EarlyWarnings:
    def __init__(self, *, page_tokens: PageTokens) -> None:
        self._page_tokens = page_tokens

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str, where: WarningFilter,
                   actor: Principal) -> Page[EarlyWarning]:
        """Relationship managers always get their own book, whatever the filter says."""
        v = Violations()
        rules.validate_filter(where, v)
        v.raise_if_any()
        if actor.is_relationship_manager_only:
            where = replace(where, relationship_manager_id=actor.subject)
        limit = clamp_page_size(page_size)
        query = {"where": repr(where)}
        after = self._page_tokens.decode(page_token, query=query)
        found = await repository.page(uow, where=where, after=after, limit=limit + 1)
        page = self._page_tokens.page(found, limit=limit, query=query, key=lambda c: [
            c.probability if c.probability is not None else -1.0, c.customer_id])
        return Page([rules.warning(c) for c in page.items], page.next_page_token)
