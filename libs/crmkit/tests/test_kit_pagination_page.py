"""The one way a list cuts its page and makes the next token."""

from __future__ import annotations

from crmkit.pagination import PageTokens


def test_a_read_of_one_more_than_the_page_yields_a_token_after_the_last_item() -> None:
    tokens = PageTokens(b"k" * 32)
    page = tokens.page(["a", "b", "c"], limit=2, key=lambda x: x, query={"q": 1})
    assert list(page.items) == ["a", "b"]
    assert tokens.decode(page.next_page_token, query={"q": 1}) == "b"


def test_the_last_page_has_no_token() -> None:
    tokens = PageTokens(b"k" * 32)
    assert tokens.page(["a", "b"], limit=2, key=lambda x: x, query={}).next_page_token == ""
    assert tokens.page([], limit=2, key=lambda x: x, query={}).next_page_token == ""
