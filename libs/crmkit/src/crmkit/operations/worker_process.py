"""What runs inside a spawned worker process: its start-up, and the trampoline around each job."""

from __future__ import annotations

import ctypes
import gc
import inspect
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from crmkit import loop as event_loop
from crmkit.errors import DomainError
from crmkit.logs import get_logger
from crmkit.operations.errors import OperationCancelled, OperationFailed, WorkerCrashed

log = get_logger("crm.operations")


def init_worker(service: str, log_level: str, service_pid: int) -> None:
    """Runs once in each spawned worker process."""
    from crmkit.logs import configure_logging

    _die_with(service_pid)
    configure_logging(service=service, level=log_level)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_SECONDS = 1.0


def _die_with(service_pid: int) -> None:
    """A worker must not outlive its service: an orphan holds the service's stdout open (a
    supervisor reading it never sees it end) and keeps a pod's container half alive.

    On Linux the kernel kills the worker when the thread that spawned it ends; that is the
    service's event loop thread (`run_in_executor` submits there, and the pool spawns workers
    on submit), which lives as long as the service. Elsewhere a thread polls the parent pid."""
    armed = False
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    if os.getppid() != service_pid:  # the service died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_exit_when_orphaned, args=(service_pid,), name="orphan-watchdog",
                         daemon=True).start()


def _exit_when_orphaned(service_pid: int) -> None:
    while os.getppid() == service_pid:
        time.sleep(_WATCHDOG_SECONDS)
    os._exit(1)


def run_in_worker(function: Callable[[Any], Any], argument: Any, domain: str) -> Any:
    """The trampoline a worker process runs: `function(argument)`, on a fresh event loop when it
    is a coroutine function. Errors come back as exceptions that survive pickling."""
    # What the process holds before the job (modules, the job's own code, caches) lives as long
    # as it does: moved out of the collector's sight, the job's full collections stop walking it
    # (a bulk import's staging allocates per row; about 3 us of ~80 per row). Collected first, so
    # no garbage of an earlier job is frozen with it.
    gc.collect()
    gc.freeze()
    try:
        if inspect.iscoroutinefunction(function):
            return event_loop.run(function(argument))
        return function(argument)
    except (OperationCancelled, OperationFailed):
        raise
    except DomainError as exc:
        raise OperationFailed.of(exc, domain=domain) from None
    except Exception as exc:
        # Frames only: a message may quote data (SQL parameters, cell values).
        log.error("worker_crashed", job=getattr(function, "__qualname__", "?"), error_type=type(exc).__name__,
                  stack="".join(traceback.format_tb(exc.__traceback__)))
        raise WorkerCrashed(type(exc).__name__) from None
