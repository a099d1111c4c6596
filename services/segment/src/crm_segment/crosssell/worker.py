"""An association-rule run, in a worker process (spawned; see crmkit.operations): read the
population's holdings, mine them (`rules.mine`), and store the outcome and its rules in the
transaction that completes the operation. Progress and the cancel flag go through a second
connection. This worker opens its transactions (crmkit.db's rule for work no RPC starts)."""

from __future__ import annotations

import uuid

import asyncpg
from google.protobuf.message import Message

from crm_segment.crosssell import repository, rules
from crm_segment.crosssell.model import MiningJob
from crm_segment.membership import repository as membership_repository
from crmkit.operations import OperationCancelled, WorkerOperation, complete_in
from crmkit.settings import plain_database_url

_APPLICATION = "crm-segment-association"


async def mine_rules(job: MiningJob) -> Message:
    """Mine and store the run; the operation's response (the finished run)."""
    url = plain_database_url(job.database_url)
    run_id, operation_id = uuid.UUID(job.run_id), uuid.UUID(job.operation_id)
    connection = await asyncpg.connect(url, server_settings={"application_name": _APPLICATION})
    reporter = await asyncpg.connect(url, server_settings={"application_name": _APPLICATION})
    progress = WorkerOperation(reporter, operation_id)
    try:
        await _advance(progress, stage="reading")
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            baskets = await repository.population_baskets(connection, job.spec.population_segment_id)
            as_of = await membership_repository.features_as_of(connection)
        await _advance(progress, stage="mining", total=len(baskets))
        result = rules.mine(rules.request_of(job.spec, baskets))
        await _advance(progress, stage="storing")
        async with connection.transaction():
            await repository.record_outcome(connection, run_id, result, rules.stored_rules(result), as_of)
            await _advance(progress, done=len(baskets))
            run = await repository.get_run(connection, run_id)
            assert run is not None
            response: Message = job.result_message(run)
            await complete_in(connection, operation_id, response)
    finally:
        await reporter.close()
        await connection.close()
    return response


async def _advance(progress: WorkerOperation, *, done: int = 0, total: int | None = None,
                   stage: str | None = None) -> None:
    if (await progress.advance(done=done, total=total, stage=stage)).cancel_requested:
        raise OperationCancelled()
