"""Opaque, bounded page tokens (AIP-158).

A token carries the last key of the previous page and a fingerprint of the query's filter,
signed with the service's key so callers can neither forge positions nor reuse a token with a
different filter. Page sizes are clamped: 0 means the default, above the maximum is the maximum.

Every list reads the same way::

    limit = clamp_page_size(page_size)
    after = self._page_tokens.decode(page_token, query=query)
    found = await self._repository.page(uow, after=after, limit=limit + 1, ...)
    return self._page_tokens.page(found, limit=limit, key=lambda c: c.customer_id, query=query)

The repository reads one row more than the page holds: its presence is how `page` knows there
is a next page, without a count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crmkit.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_TOKEN_LENGTH = 512

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and the token of the next (empty on the last page)."""

    items: Sequence[T]
    next_page_token: str


def clamp_page_size(page_size: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if page_size < 0:
        raise InvalidArgument([FieldViolation("page_size", "must not be negative")])
    return default if page_size == 0 else min(page_size, maximum)


class PageTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, last_key: Any, *, query: dict[str, Any]) -> str:
        body = json.dumps({"k": last_key, "q": _fingerprint(query)}, separators=(",", ":")).encode()
        signature = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(signature + body).decode().rstrip("=")

    def decode(self, token: str, *, query: dict[str, Any]) -> Any:
        """The last key of the previous page, or None for an empty token."""
        if not token:
            return None
        bad = InvalidArgument([FieldViolation("page_token", "is not a token from this list with this filter")])
        if len(token) > MAX_TOKEN_LENGTH:
            raise bad
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            signature, body = raw[:16], raw[16:]
            if not hmac.compare_digest(signature, hmac.new(self._key, body, hashlib.sha256).digest()[:16]):
                raise bad
            decoded = json.loads(body)
        except (ValueError, TypeError) as exc:
            raise bad from exc
        if decoded.get("q") != _fingerprint(query):
            raise bad
        return decoded["k"]

    def page(self, found: Sequence[T], *, limit: int, key: Callable[[T], Any], query: dict[str, Any]) -> Page[T]:
        """The first `limit` of `found` (read with `limit + 1`), and a token after the last of them
        when `found` held more; `key` gives the value the next read starts after."""
        items = found[:limit]
        more = len(found) > limit
        return Page(items, self.encode(key(items[-1]), query=query) if more and items else "")


def _fingerprint(query: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]
