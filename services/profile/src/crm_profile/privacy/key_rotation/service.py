"""RotateEncryptionKey: make a loaded key the one new values are sealed with, and re-encrypt every
stored value with it as a long-running operation (the work itself: `worker.py`).

The new key seals new writes at once in this process, and the choice is kept in
`encryption_key_state`, so a restart keeps it while the configuration still names the key it
replaced (`CRM_PROFILE_ACTIVE_KEY_ID`); an operator who configures another key has the last word.
Other replicas and the import's worker processes seal with their configured key until they
restart with the new one: set `CRM_PROFILE_ACTIVE_KEY_ID` to it in the next rollout. Their
writes stay readable (both keys are in the ring), and running the job again moves them too.

RotateEncryptionKey runs in the unit of work its servicer opens (crmkit.db's rule) and only
creates the operation there; the re-encryption is an operation in a worker process that commits
a batch per transaction on connections of its own (`worker.py`), and `prepare` reads the kept
choice at start-up in a read-only unit of work of its own.

Blind indexes have one key without an id (`CRM_PROFILE_BLIND_INDEX_KEY`): no index key can be
"loaded" beside it, so a BLIND_INDEX rotation is refused with KEY_NOT_LOADED.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from google.protobuf.message import Message
from pydantic import SecretStr
from sqlalchemy.dialects import postgresql as pg

from crm_profile.privacy.key_rotation import worker as rotation_worker
from crm_profile.privacy.key_rotation.model import KeyPurpose, RotationResult
from crm_profile.privacy.key_rotation.tables import encryption_key_state
from crm_profile.tables import audit_record, operation
from crmkit.audit import AuditEntry
from crmkit.audit import append as append_audit
from crmkit.auth import Principal
from crmkit.crypto import KeyRing
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation, Started, name_of, parse_name
from crmkit.validation import Violations

log = get_logger("crm.profile.rotation")

KIND = "profile.rotate_key"
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_START_LOCK_KEY = 0x43524D4B4559  # "CRMKEY": one rotation starts at a time


@dataclass(frozen=True)
class RotationMessages:
    """The operation's metadata and result as protos; supplied by the API layer."""

    metadata: Callable[[KeyPurpose, str, list[str]], Message]
    result: Callable[[RotationResult], Message]


class KeyRotation:
    def __init__(self, *, db: Database, keys: KeyRing, configured_key_id: str, operations: Operations,
                 runner: OperationRunner, idempotency: IdempotencyKeys, database_url: str,
                 encryption_keys: SecretStr, messages: RotationMessages) -> None:
        self._db = db
        self._keys = keys
        self._configured_key_id = configured_key_id
        self._operations = operations
        self._runner = runner
        self._idempotency = idempotency
        self._database_url = database_url
        self._encryption_keys = encryption_keys
        self._messages = messages

    async def prepare(self) -> None:
        """At start-up: keep sealing with the key the last rotation chose (see the module docstring)."""
        async with self._db.unit_of_work(read_only=True) as uow:
            state = (await uow.execute(sa.select(encryption_key_state).where(
                encryption_key_state.c.purpose == int(KeyPurpose.FIELD_ENCRYPTION)))).first()
        if state is None or state.replaced_key_id != self._configured_key_id:
            return
        if state.active_key_id not in self._keys.key_ids:
            log.warning("rotated_key_not_loaded", key_id=state.active_key_id)
            return
        self._keys.activate(state.active_key_id)

    async def start(self, *, uow: UnitOfWork, purpose: int, target_key_id: str, request_id: uuid.UUID | None,
                    request: Message, actor: Principal, violations: Violations | None = None) -> Started:
        """Make the key active and create the re-encryption operation in `uow`; the caller launches
        it once `uow` has committed. This process seals with the new key from the commit on."""
        v = violations if violations is not None else Violations()
        v.enum(purpose, "purpose", frozenset(KeyPurpose) - {KeyPurpose.UNSPECIFIED}, "KeyPurpose",
               required="is required: KEY_PURPOSE_FIELD_ENCRYPTION or KEY_PURPOSE_BLIND_INDEX")
        if v.required(target_key_id, "target_key_id"):
            v.pattern(target_key_id, "target_key_id", KEY_ID, "must be 1 to 64 characters from A-Z a-z 0-9 _ -")
        v.raise_if_any()
        if purpose == KeyPurpose.BLIND_INDEX:
            raise FailedPrecondition(
                "blind indexes have a single key (CRM_PROFILE_BLIND_INDEX_KEY) and no ring of index keys to load "
                "another into", reason="KEY_NOT_LOADED", metadata={"target_key_id": target_key_id})
        if target_key_id not in self._keys.key_ids:
            raise FailedPrecondition(f"key {target_key_id} is not loaded: add it to CRM_PROFILE_ENCRYPTION_KEYS first",
                                     reason="KEY_NOT_LOADED", metadata={"target_key_id": target_key_id})
        operation_id = uuid.uuid4()
        await uow.execute(sa.select(sa.func.pg_advisory_xact_lock(_START_LOCK_KEY)))
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=request, method="RotateEncryptionKey",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        running = await uow.scalar(sa.select(operation.c.operation_id).where(
            operation.c.kind == KIND, operation.c.state.in_([1, 2])).limit(1))
        if running is not None:
            raise FailedPrecondition(f"a key rotation is already running: {name_of(running)}",
                                     reason="ROTATION_IN_PROGRESS", metadata={"operation": name_of(running)})
        previous = sorted(self._keys.key_ids - {target_key_id})
        started = await self._operations.create(
            uow, kind=KIND, creator=actor.subject, operation_id=operation_id,
            metadata=self._messages.metadata(KeyPurpose.FIELD_ENCRYPTION, target_key_id, previous))
        statement = pg.insert(encryption_key_state).values(
            purpose=int(KeyPurpose.FIELD_ENCRYPTION), active_key_id=target_key_id,
            replaced_key_id=self._configured_key_id)
        await uow.execute(statement.on_conflict_do_update(
            index_elements=[encryption_key_state.c.purpose],
            set_={"active_key_id": target_key_id, "replaced_key_id": self._configured_key_id,
                  "updated_at": sa.func.now()}))
        await append_audit(uow, audit_record, [AuditEntry(
            principal=actor.subject, action="encryption_key.rotate", resource_name=name_of(operation_id),
            purpose="DATA_MANAGEMENT", justification=f"target_key_id={target_key_id}")])
        job = rotation_worker.RotationJob(operation_id=operation_id, database_url=self._database_url,
                                          encryption_keys=self._encryption_keys, target_key_id=target_key_id)

        def launch() -> None:
            self._keys.activate(target_key_id)  # only once the choice is committed
            self._runner.launch(operation_id, functools.partial(self._run, job))

        return Started(started, launch)

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _run(self, job: rotation_worker.RotationJob, run: RunningOperation) -> Message:
        result: RotationResult = await run.call(rotation_worker.rotate, job)
        log.info("key_rotated", rewritten=result.rewritten, retired=len(result.retired_key_ids))
        return self._messages.result(result)
