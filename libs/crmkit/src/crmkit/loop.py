"""The one event loop every process of the platform runs on: uvloop.

Services, the gateway and the operation workers run on uvloop. asyncpg, the hot path of every
RPC, is built for it (its protocol and the loop's own bookkeeping run in C); grpc.aio runs on any
asyncio loop (its completion queue is polled from its own thread and handed to the running loop);
and uvicorn would choose it anyway once installed. One choice here, so a service and the gateway
cannot drift apart. Tests run on pytest-asyncio's standard loop: the code must not depend on
either loop's quirks.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

# uvicorn's name for the same loop (its `loop=` setting).
UVICORN_LOOP = "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh uvloop, as `asyncio.run` would on the standard loop."""
    return uvloop.run(main)
