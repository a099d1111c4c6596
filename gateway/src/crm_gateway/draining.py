"""Leaving the load balancer's rotation before closing the listening socket.

On SIGTERM Kubernetes removes the pod from the Service's endpoints and signals the process at
the same moment; kube-proxies and ingress controllers learn of the removal a few seconds later.
uvicorn closes its listening socket on the signal, so requests routed to the pod in those
seconds would be refused. `DrainingServer` first keeps serving for `drain_seconds` with
`/readyz` answering 503 (`Drain.started`), then lets uvicorn shut down as usual (in-flight
requests get `CRM_SHUTDOWN_GRACE_SECONDS`). A second signal shuts down at once.
"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import uvicorn

from crmkit.logs import get_logger

log = get_logger("crm.gateway")


class Drain:
    """Whether the gateway has begun to leave the rotation (read by the readiness probe)."""

    def __init__(self) -> None:
        self.started = False


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain: Drain, drain_seconds: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_seconds = drain_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain.started or self._drain_seconds <= 0:
            super().handle_exit(sig, frame)
            return
        self._drain.started = True
        log.info("gateway_draining", signal=signal.Signals(sig).name, seconds=self._drain_seconds)
        # A signal handler may interrupt the loop anywhere: hand the timer to the loop through its
        # thread-safe queue rather than touching its schedule from here.
        loop = asyncio.get_running_loop()
        loop.call_soon_threadsafe(loop.call_later, self._drain_seconds, super().handle_exit, sig, frame)
