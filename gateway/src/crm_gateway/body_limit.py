"""The gateway's own request body limit: 413 problem+json before a body is parsed or forwarded.

A body the gateway accepted must fit the services' gRPC messages, and its size is the client's
to fix, so the gateway refuses it itself rather than let a service's message-size limit answer
(a RESOURCE_EXHAUSTED naming the internal limit). A declared `Content-Length` beyond the limit
is refused before anything is read; a chunked body is counted as it arrives and refused as soon
as it passes the limit, so no more than `max_bytes` (plus one chunk) is ever held.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_gateway import problems


class BodyTooLarge(HTTPException):
    """Raised while the body is read; FastAPI lets HTTP exceptions through to the handlers,
    where it becomes the same problem as a refused `Content-Length`."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(max_bytes))
        self.max_bytes = max_bytes


def too_large_detail(max_bytes: int) -> str:
    return f"the request body is larger than the gateway accepts ({max_bytes} bytes)"


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:  # read outside a route's handlers (no one turned it into a response)
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await too_large(self.max_bytes)(scope, receive, send)


def too_large(max_bytes: int) -> problems.ProblemResponse:
    return problems.problem(problems.CONTENT_TOO_LARGE, too_large_detail(max_bytes), reason="BODY_TOO_LARGE")


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:  # the server refuses a malformed length; count the bytes if it did not
        return None
