"""What a batch-scoring worker process runs: one chunk of customers through the churn core.
Top-level and picklable (spawned workers, `OperationRunner.call`)."""

from __future__ import annotations

from dataclasses import dataclass

from crm_risk.churn import features as churn_features
from crm_risk.churn import training
from crm_risk.churn.model import CustomerScore, Encoding
from crm_risk.scoring import rules


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
    return training.score(training.ScoringRequest(artifact=job.artifact, artifact_sha256=job.artifact_sha256,
                                                  data=data, top_drivers=job.top_drivers))
