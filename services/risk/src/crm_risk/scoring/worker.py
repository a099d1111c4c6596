"""What a batch-scoring worker process runs: one chunk of customers through the churn core.
Top-level and picklable (spawned workers, `OperationRunner.call`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from crm_risk.churn import features as churn_features
from crm_risk.churn import training
from crm_risk.churn.model import CustomerScore, Encoding
from crm_risk.scoring import rules

# Loaded models of this process by artifact SHA-256: a registered artifact never changes, and
# loading one (hashing and unpickling thousands of trees, about a second) costs far more than
# scoring a customer or a chunk. Bounded: a process scores with the few models in use.
MAX_LOADED = 4
_loaded: dict[str, training.LoadedModel] = {}
_loading = threading.Lock()


def loaded_model(artifact: bytes, artifact_sha256: str) -> training.LoadedModel:
    """The artifact's model, loaded (and checked against its SHA-256) once per process."""
    with _loading:
        model = _loaded.get(artifact_sha256)
        if model is None:
            model = training.load(artifact, artifact_sha256)
            if len(_loaded) >= MAX_LOADED:
                _loaded.pop(next(iter(_loaded)))
            _loaded[artifact_sha256] = model
        return model


@dataclass(frozen=True)
class ChunkJob:
    artifact: bytes
    artifact_sha256: str
    encoding: Encoding
    # (customer id, feature values by name) per customer.
    rows: tuple[tuple[str, dict[str, str | float]], ...]
    top_drivers: int = 3


def score_chunk(job: ChunkJob) -> tuple[CustomerScore, ...]:
    names = [f.name for f in job.encoding.features]
    table = rules.input_rows(names, job.rows)
    data = churn_features.snapshot_scoring_data(table, encoding=job.encoding, id_attribute=rules.ID_COLUMN)
    return training.score_loaded(loaded_model(job.artifact, job.artifact_sha256), data, top_drivers=job.top_drivers)
