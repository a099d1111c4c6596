"""What a training worker process runs: read the snapshot, build the training data, train.
Top-level and picklable (spawned workers, `OperationRunner.call`)."""

from __future__ import annotations

import csv
from pathlib import Path

from crm_risk.churn import features, training
from crm_risk.churn.model import SnapshotTable, TrainingResult
from crm_risk.registry.model import SnapshotJob
from crmkit.errors import FailedPrecondition


def train_snapshot(job: SnapshotJob) -> TrainingResult:
    """Train on the job's file, or on its table when it has one (read from the customer read model)."""
    table = job.table if job.table is not None else read_snapshot(Path(job.path))
    data = features.snapshot_training_data(table, features=job.features, label_attribute=job.label_attribute,
                                           id_attribute=job.id_attribute, groups=job.groups)
    return training.train(data, job.params)


def read_snapshot(path: Path) -> SnapshotTable:
    """The CSV as text cells (the core parses numbers); FAILED_PRECONDITION when it is not there
    or unreadable. The message names the file only, never its content."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = tuple(tuple(row) for row in reader)
    except FileNotFoundError:
        raise FailedPrecondition(f"snapshot file {path.name} is not in the training directory",
                                 reason="SNAPSHOT_NOT_FOUND", metadata={"file": path.name}) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FailedPrecondition(f"snapshot file {path.name} cannot be read as UTF-8 CSV ({type(exc).__name__})",
                                 reason="SNAPSHOT_UNREADABLE", metadata={"file": path.name}) from None
    if header is None:
        raise FailedPrecondition(f"snapshot file {path.name} is empty", reason="SNAPSHOT_EMPTY",
                                 metadata={"file": path.name})
    return SnapshotTable(columns=tuple(header), rows=rows)
