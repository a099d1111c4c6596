"""What a training worker process runs: read the bank's CSV of labelled examples, train, score.
Top-level and picklable (spawned workers, `OperationRunner.call`). Error messages name the file
and columns, never the file's content."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from crm_feedback.classification import text as text_rules
from crm_feedback.classification import training
from crm_feedback.classification.model import Target, TrainingJob
from crmkit.errors import FailedPrecondition

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def train(job: TrainingJob) -> training.TrainingResult:
    texts, labels, holdout_start_row = read_examples(job)
    return training.train(texts, labels, training.TrainingParams(
        target=job.target.word, holdout_start_row=holdout_start_row, holdout_fraction=job.holdout_fraction,
        random_seed=job.random_seed))


def read_examples(job: TrainingJob) -> tuple[list[str], list[str], int]:
    """The examples in file order, and `holdout_start_row` as an index (1-based) into them:
    rows with empty text or label are skipped (the holdout row counts the file's rows), text is
    cut to MAX_TEXT characters. FAILED_PRECONDITION when the file or a
    column is missing or a sentiment label is not negative, neutral or positive."""
    path = Path(job.path)
    mapping = dict(job.label_mapping)
    texts: list[str] = []
    labels: list[str] = []
    holdout_start = job.holdout_start_row
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in (job.text_column, job.label_column) if c not in columns]
            if missing:
                raise FailedPrecondition(f"training file {path.name} has no column {', '.join(missing)}",
                                         reason="COLUMN_NOT_FOUND", metadata={"file": path.name})
            for number, row in enumerate(reader, start=1):
                # Longer text is cut to what ClassifyText accepts, so training sees what scoring will.
                text = (row[job.text_column] or "").strip()[:text_rules.MAX_TEXT]
                label = (row[job.label_column] or "").strip()
                if not text or not label:
                    if job.holdout_start_row and number < job.holdout_start_row:
                        holdout_start -= 1
                    continue
                label = mapping.get(label, label)
                if job.target == Target.SENTIMENT:
                    short = text_rules.sentiment_label(label)
                    if not short:
                        raise FailedPrecondition(
                            f"training file {path.name}: sentiment label {label[:40]!r} (row {number}) is not "
                            "negative, neutral or positive; map it with spec.label_mapping",
                            reason="BAD_SENTIMENT_LABEL", metadata={"file": path.name})
                    label = short
                texts.append(text)
                labels.append(label)
    except FileNotFoundError:
        raise FailedPrecondition(f"training file {path.name} is not in the training directory",
                                 reason="TRAINING_FILE_NOT_FOUND", metadata={"file": path.name}) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FailedPrecondition(f"training file {path.name} cannot be read as UTF-8 CSV ({type(exc).__name__})",
                                 reason="TRAINING_FILE_UNREADABLE", metadata={"file": path.name}) from None
    return texts, labels, holdout_start
