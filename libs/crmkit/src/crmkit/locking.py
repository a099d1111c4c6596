"""Read-modify-write with optimistic concurrency (AIP-154): lock the row, then check the etag.

Every update and delete starts the same way: read the resource locked for the rest of the unit
of work, NOT_FOUND if it is missing, the service's own preconditions, then ABORTED
(`ETAG_MISMATCH`) if the caller's etag is stale. `load_for_update` does that in one call::

    current = await load_for_update(
        self._repository.get(uow, campaign_id, for_update=True), etag=etag,
        not_found=lambda: not_found(campaign_id), check=rules.check_deletable)

`check` runs before the etag comparison, so a caller who may not touch the resource (another
book, a closed record) learns that rather than "re-read and retry".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from crmkit.errors import Aborted


class Versioned(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def etag(self) -> str: ...


V = TypeVar("V", bound=Versioned)


async def load_for_update(
    found: Awaitable[V | None], *, etag: str, not_found: Callable[[], Exception],
    check: Callable[[V], object] | None = None,
) -> V:
    """The awaited resource (the caller's locked read), or `not_found()` raised when it is None,
    or ABORTED when `etag` is given and stale; `check(resource)` raises the caller's own refusals."""
    current = await found
    if current is None:
        raise not_found()
    if check is not None:
        check(current)
    if etag and etag != current.etag:
        raise Aborted(f"{current.name} changed since it was read; re-read and retry", reason="ETAG_MISMATCH",
                      metadata={"resource_name": current.name})
    return current
