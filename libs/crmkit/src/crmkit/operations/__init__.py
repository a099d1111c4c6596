"""Long-running operations (AIP-151): the `operation` table, its proto, and the worker processes.

Work that takes more than a request's worth of time (bulk import, materialisation, training)
is an Operation row in the service's own database. The RPC that starts it creates the row
(PENDING) in its unit of work and returns at once; a *coordinator* coroutine then runs the
work in the service process, handing every CPU-heavy step to a worker process through
`OperationRunner.call`. Workers are started with the `spawn` method (gRPC is not fork-safe),
open their own asyncpg connections, and report through the same row: progress counters,
the stage, and at the end the response or a `google.rpc.Status`.

- **Cancellation is cooperative.** `CancelOperation` sets `cancel_requested` (a PENDING
  operation is cancelled at once); workers and coordinators look at the flag between batches
  (`WorkerOperation.advance` returns it) and raise `OperationCancelled`, which rolls their
  work back and ends the operation CANCELLED.
- **Watching is polling.** `Operations.watch` reads the row's `version` (bumped on every
  visible change) every `poll_seconds` and yields the operation when it moved; the stream
  ends with the final state.
- **Nothing is left RUNNING forever.** The runner heartbeats the operations it coordinates;
  any replica's sweeper fails operations whose heartbeat stopped (their process died), and
  purges finished ones after the retention period. On shutdown the runner asks its workers to
  stop, waits up to the grace period, then fails what is left with UNAVAILABLE ("run it again").
- **Success can commit with the work.** A job whose result must be atomic with its data calls
  `complete_in(connection, ...)` inside its own transaction; the runner then finds the
  operation final and leaves it alone.

Modules: `tables` (the table), `messages` (states, names, row -> proto), `errors` (what ends an
operation, across processes), `repository` (the row's SQL shared with workers, the worker's
handle), `service` (`Operations`: the RPCs' side), `worker_process` (what runs in a worker) and
`runner` (`OperationRunner`: coordinators, the pool, the sweeper). Callers import from here.
"""

from crmkit.operations.errors import OperationCancelled, OperationFailed, WorkerCrashed, failure_status
from crmkit.operations.messages import (
    CANCELLED,
    FAILED,
    FINAL,
    OPERATION,
    PENDING,
    RUNNING,
    SUCCEEDED,
    UNFINISHED,
    State,
    name_of,
    parse_name,
    to_proto,
)
from crmkit.operations.repository import ProgressSnapshot, WorkerOperation, complete_in
from crmkit.operations.runner import ABANDON_AFTER, HEARTBEAT_SECONDS, Coordinator, OperationRunner, RunningOperation
from crmkit.operations.service import PAGE_BYTES, RETENTION, Operations, Started
from crmkit.operations.tables import operation_table

__all__ = [
    "ABANDON_AFTER", "CANCELLED", "FAILED", "FINAL", "HEARTBEAT_SECONDS", "OPERATION", "PAGE_BYTES", "PENDING",
    "RETENTION", "RUNNING", "SUCCEEDED", "UNFINISHED", "Coordinator", "OperationCancelled", "OperationFailed",
    "OperationRunner", "Operations", "ProgressSnapshot", "RunningOperation", "Started", "State",
    "WorkerCrashed", "WorkerOperation", "complete_in", "failure_status", "name_of", "operation_table",
    "parse_name", "to_proto",
]
