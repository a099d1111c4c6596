"""Text classifier use cases: train as an operation, read the registry, classify text.

Training: `start_training` checks what needs no data, creates the PENDING `feedback.train`
operation in the caller's unit of work and returns `Started`; the coordinator then trains in a
spawned worker (`OperationRunner.call`) and registers the classifier (activating it when the
spec asks) in one transaction with the operation's completion (`complete_in`), so a failed run
registers nothing. Bad data (missing file or column, too few labels) is only known in the
worker: it fails the operation with FAILED_PRECONDITION.

Classification loads an active classifier's model once per process (keyed by its artifact's
hash, checked before unpickling) and runs it in the RPC's task: a linear model on a sparse
vector is well under a millisecond of work.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from crm_feedback.classification import repository, rules, training, worker
from crm_feedback.classification import text as text_rules
from crm_feedback.classification.model import (
    ACTIVE_PREFIX,
    KIND,
    Classification,
    PredictedCategory,
    Reading,
    RegisteredClassifier,
    Target,
    TrainingJob,
    TrainingRequest,
)
from crmkit.auth import Principal
from crmkit.db import Database, UnitOfWork
from crmkit.errors import FailedPrecondition, NotFound
from crmkit.idempotency import IdempotencyKeys
from crmkit.logs import get_logger
from crmkit.operations import OperationRunner, Operations, RunningOperation, Started, complete_in, name_of, parse_name
from crmkit.pagination import Page, PageTokens, clamp_page_size
from crmkit.validation import Violations

log = get_logger("crm.feedback.classification")

# Protos are made by the API layer, so this module stays free of generated messages.
SpecMessage = Callable[[TrainingRequest], Message]
ClassifierMessage = Callable[[RegisteredClassifier], Message]


class TextClassifiers:
    def __init__(self, *, db: Database, operations: Operations, runner: OperationRunner,
                 idempotency: IdempotencyKeys, page_tokens: PageTokens, training_dir: str,
                 spec_message: SpecMessage, classifier_message: ClassifierMessage) -> None:
        self._db = db
        self._operations = operations
        self._runner = runner
        self._idempotency = idempotency
        self._page_tokens = page_tokens
        self._training_dir = training_dir
        self._spec_message = spec_message
        self._classifier_message = classifier_message
        # Loaded models by artifact SHA-256 (a registered artifact never changes).
        self._models: dict[str, Any] = {}

    # --- training -----------------------------------------------------------------------

    async def start_training(self, *, uow: UnitOfWork, request: TrainingRequest, request_id: uuid.UUID | None,
                             message: Message, actor: Principal) -> Started:
        checked = rules.check(request)
        path = rules.training_path(self._training_dir, checked.file)
        operation_id = uuid.uuid4()
        replayed = await self._idempotency.claim_or_replay(
            uow, principal=actor.subject, request_id=request_id, request=message, method="TrainTextClassifier",
            resource_name=name_of(operation_id), replay=self._earlier)
        if replayed is not None:
            return replayed
        spec = self._spec_message(checked)
        operation = await self._operations.create(uow, kind=KIND, creator=actor.subject, metadata=spec,
                                                  operation_id=operation_id)
        job = TrainingJob(path=str(path), target=Target(checked.target), text_column=checked.text_column,
                          label_column=checked.label_column, label_mapping=checked.label_mapping,
                          holdout_start_row=checked.holdout_start_row, holdout_fraction=checked.holdout_fraction,
                          random_seed=checked.random_seed)

        def launch() -> None:
            self._runner.launch(operation_id, functools.partial(
                self._train, operation_id, job, spec.SerializeToString(), actor.subject, checked.activate))
            log.info("text_classifier_training_started", operation_id=str(operation_id), target=job.target.word)

        return Started(operation, launch)

    async def _earlier(self, name: str) -> Started:
        return Started(await self._operations.get(operation_id=parse_name(name)))

    async def _train(self, operation_id: uuid.UUID, job: TrainingJob, spec: bytes, creator: str, activate: bool,
                     run: RunningOperation) -> Message:
        await run.progress(stage="training")
        result: training.TrainingResult = await run.call(worker.train, job)
        async with self._db.raw() as connection, connection.transaction():
            # The last look at the cancel flag before the classifier becomes visible.
            await run.progress(stage="registering")
            if activate:
                await repository.lock_activations(connection)
            registered = await repository.insert(
                connection, result=result, target=job.target, training_spec=spec,
                operation_name=name_of(operation_id), creator=creator, activate=activate)
            response = self._classifier_message(registered)
            await complete_in(connection, operation_id, response)
        log.info("text_classifier_registered", operation_id=str(operation_id),
                 text_classifier_id=registered.text_classifier_id, target=job.target.word, active=activate,
                 accuracy=round(result.metrics.accuracy, 4), macro_f1=round(result.metrics.macro_f1, 4))
        return response

    # --- registry -----------------------------------------------------------------------

    async def get(self, *, uow: UnitOfWork, text_classifier_id: str) -> RegisteredClassifier:
        if text_classifier_id.startswith(ACTIVE_PREFIX):
            target = _target_named(text_classifier_id.removeprefix(ACTIVE_PREFIX))
            if target is not None:
                found = await repository.active(uow, target)
                if found is None:
                    raise NotFound(f"no {target.word} classifier is active yet: train one with activate set",
                                   reason="NO_ACTIVE_CLASSIFIER", metadata={"target": target.word})
                return found
        found = await repository.get(uow, text_classifier_id)
        if found is None:
            raise NotFound(f"text classifier {text_classifier_id} not found", reason="TEXT_CLASSIFIER_NOT_FOUND",
                           metadata={"text_classifier_id": text_classifier_id})
        return found

    async def list(self, *, uow: UnitOfWork, page_size: int, page_token: str, target: int
                   ) -> Page[RegisteredClassifier]:
        v = Violations()
        v.check(target in (0, *Target), "target", "must be a TextClassifierTarget or unspecified")
        v.raise_if_any()
        limit = clamp_page_size(page_size)
        query = {"target": target}
        before = self._page_tokens.decode(page_token, query=query)
        found = await repository.page(uow, before=before, limit=limit + 1, target=target)
        return self._page_tokens.page(found, limit=limit, key=lambda m: m.version, query=query)

    # --- classification -----------------------------------------------------------------

    async def classify(self, *, uow: UnitOfWork, text: str, language_code: str) -> Classification:
        """INVALID_ARGUMENT naming `text` or `language_code`; FAILED_PRECONDITION when no
        classifier is active."""
        v = Violations()
        trimmed = text_rules.check_text(text, "text", v)
        text_rules.check_language(language_code, v)
        v.raise_if_any()
        readings = await self._read(uow, trimmed, (Target.CATEGORY, Target.SENTIMENT))
        if not readings:
            raise FailedPrecondition("no text classifier is active: train one with TrainTextClassifier "
                                     "(spec.activate)", reason="NO_ACTIVE_CLASSIFIER")
        return Classification(language_code=language_code or text_rules.detect_language(trimmed),
                              category=readings.get(Target.CATEGORY), sentiment=readings.get(Target.SENTIMENT))

    async def predict_category(self, uow: UnitOfWork, description: str) -> PredictedCategory | None:
        """The active category classifier's category for a complaint's description; None when no
        classifier is active or its label names no ComplaintCategory."""
        reading = (await self._read(uow, description.strip(), (Target.CATEGORY,))).get(Target.CATEGORY)
        if reading is None:
            return None
        category = text_rules.category_of(reading.label)
        if not category:
            return None
        return PredictedCategory(category=category, label=reading.label, confidence=reading.probability,
                                 model_version=reading.model_version)

    async def _read(self, uow: UnitOfWork, text: str, targets: tuple[Target, ...]) -> dict[Target, Reading]:
        active = await repository.active_versions(uow)
        live = {sha for _, _, sha in active.values()}
        for stale in [sha for sha in self._models if sha not in live]:
            del self._models[stale]
        readings: dict[Target, Reading] = {}
        for target in targets:
            if target not in active:
                continue
            text_classifier_id, model_version, sha = active[target]
            model = self._models.get(sha)
            if model is None:
                stored = await repository.artifact(uow, text_classifier_id)
                if stored is None:
                    continue
                model = await asyncio.to_thread(training.load, stored, sha)
                self._models[sha] = model
            readings[target] = Reading(model_version=model_version, ranked=tuple(training.classify(model, text)))
        return readings


def _target_named(word: str) -> Target | None:
    return next((t for t in Target if t.word == word), None)
