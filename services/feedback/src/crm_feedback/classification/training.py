"""Training and scoring of a text classifier: scikit-learn, pure (no gRPC, no SQL, no files).

The recipe, the same for Chinese and English text and for both targets:

- features: TF-IDF (sublinear tf) of word 1-2 grams over Latin-script words, plus TF-IDF of
  character n-grams (`CHAR_NGRAMS`), which carry Chinese (no word boundaries) and English
  morphology and misspellings alike;
- model: a linear classifier with class weights balanced (macro-F1 counts every label alike),
  its regularisation `C` chosen from `C_GRID` by stratified cross-validation on the training
  part only (the held-out part is never looked at until the final score);
- probabilities: the chosen model calibrated (sigmoid, 3-fold) so `ClassifyText` reports them.

`train` holds out the test part first (the file's own split from `holdout_start_row`, or a
stratified random share), chooses `C`, fits on the training part, scores the held-out part
(accuracy, macro-F1, the same per detected language) and returns the pickled model with its
SHA-256. `classify` unpickles nothing: the caller hands it the loaded model.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_union
from sklearn.svm import LinearSVC

from crm_feedback.classification import text as text_rules
from crmkit.errors import FailedPrecondition

# Latin-script words and numbers; Han text gets no word features (it has no spaces to split on).
WORD_PATTERN = r"[A-Za-z][A-Za-z0-9']*|[0-9]+"
WORD_NGRAMS = (1, 2)
CHAR_NGRAMS = (1, 4)
C_GRID = (0.3, 1.0, 3.0)
TUNING_FOLDS = 3
CALIBRATION_FOLDS = 3
# A label needs this many examples to be learned and measured; rarer labels are left out (and named).
MIN_EXAMPLES_PER_LABEL = 5
MIN_LABELS = 2
RECIPE_VERSION = "1"


@dataclass(frozen=True)
class TrainingParams:
    target: str  # "category" or "sentiment"
    holdout_start_row: int = 0  # 1-based; 0: a stratified random `holdout_fraction`
    holdout_fraction: float = 0.2
    random_seed: int = 42
    c_grid: tuple[float, ...] = C_GRID
    tuning_folds: int = TUNING_FOLDS


@dataclass(frozen=True)
class LanguageScore:
    language_code: str
    accuracy: float
    macro_f1: float
    held_out_examples: int


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    macro_f1: float
    training_examples: int
    held_out_examples: int
    languages: tuple[LanguageScore, ...] = ()


@dataclass(frozen=True)
class TrainingResult:
    model_version: str
    labels: tuple[str, ...]
    dropped_labels: tuple[str, ...]
    metrics: Metrics
    algorithm: str
    # Cross-validated macro-F1 of each C tried on the training part.
    tuning: tuple[tuple[float, float], ...]
    artifact: bytes = field(repr=False)
    artifact_sha256: str
    data_sha256: str
    framework_version: str


def features() -> object:
    return make_union(
        TfidfVectorizer(analyzer="word", ngram_range=WORD_NGRAMS, token_pattern=WORD_PATTERN, sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, sublinear_tf=True),
    )


def _linear(c: float) -> LinearSVC:
    return LinearSVC(C=c, class_weight="balanced")


def _pipeline(estimator: object) -> Pipeline:
    return Pipeline([("features", features()), ("model", estimator)])


def train(texts: list[str], labels: list[str], params: TrainingParams) -> TrainingResult:
    """FAILED_PRECONDITION when the examples cannot make a classifier (too few labels or rows)."""
    texts = [t.strip() for t in texts]
    data_sha256 = _fingerprint(texts, labels)
    if params.holdout_start_row:
        cut = params.holdout_start_row - 1
        if not 0 < cut < len(texts):
            raise FailedPrecondition(
                f"spec.holdout_start_row {params.holdout_start_row} leaves no training or no held-out rows "
                f"(the file has {len(texts)} examples)", reason="BAD_HOLDOUT")
        split = (texts[:cut], texts[cut:], labels[:cut], labels[cut:])
        counts = Counter(split[2])
    else:
        counts = Counter(labels)
    kept = {label for label, n in counts.items() if n >= MIN_EXAMPLES_PER_LABEL}
    dropped = tuple(sorted(set(labels) - kept))
    if len(kept) < MIN_LABELS:
        raise FailedPrecondition(
            f"the examples hold {len(kept)} label(s) with at least {MIN_EXAMPLES_PER_LABEL} examples; "
            f"a classifier needs {MIN_LABELS}", reason="TOO_FEW_LABELS")
    if params.holdout_start_row:
        train_x, test_x, train_y, test_y = split
        train_x, train_y = _only(train_x, train_y, kept)
        test_x, test_y = _only(test_x, test_y, kept)
    else:
        texts, labels = _only(texts, labels, kept)
        train_x, test_x, train_y, test_y = train_test_split(
            texts, labels, test_size=params.holdout_fraction, stratify=labels, random_state=params.random_seed)
    if not test_x:
        raise FailedPrecondition("no held-out example has a label the training part has", reason="BAD_HOLDOUT")

    tuning = _tune(train_x, train_y, params)
    best_c = max(tuning, key=lambda item: (item[1], -abs(np.log(item[0]))))[0]
    folds = min(CALIBRATION_FOLDS, min(Counter(train_y).values()))
    model = _pipeline(CalibratedClassifierCV(_linear(best_c), method="sigmoid", cv=folds))
    model.fit(train_x, train_y)
    predicted = list(model.predict(test_x))
    metrics = _metrics(test_x, test_y, predicted, training_examples=len(train_x))

    artifact = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    framework = f"scikit-learn {sklearn.__version__}"
    algorithm = (f"tfidf word {WORD_NGRAMS[0]}-{WORD_NGRAMS[1]} (latin) + char_wb {CHAR_NGRAMS[0]}-{CHAR_NGRAMS[1]}, "
                 f"LinearSVC C={best_c:g} class_weight=balanced, sigmoid calibration ({folds}-fold)")
    version_hash = hashlib.sha256("\x1f".join(
        [RECIPE_VERSION, framework, data_sha256, params.target, repr(params)]).encode()).hexdigest()
    return TrainingResult(
        model_version=f"{params.target}-{version_hash[:12]}", labels=tuple(str(c) for c in model.classes_),
        dropped_labels=dropped, metrics=metrics, algorithm=algorithm, tuning=tuple(tuning), artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(), data_sha256=data_sha256, framework_version=framework)


def _only(texts: list[str], labels: list[str], kept: set[str]) -> tuple[list[str], list[str]]:
    pairs = [(t, y) for t, y in zip(texts, labels, strict=True) if y in kept]
    return [t for t, _ in pairs], [y for _, y in pairs]


def _tune(texts: list[str], labels: list[str], params: TrainingParams) -> list[tuple[float, float]]:
    """Cross-validated macro-F1 of each C on the training part. The features are fitted per fold."""
    folds = min(params.tuning_folds, min(Counter(labels).values()))
    if len(params.c_grid) == 1 or folds < 2:
        return [(params.c_grid[0], 0.0)]
    splitter = StratifiedKFold(folds, shuffle=True, random_state=params.random_seed)
    x = np.array(texts, dtype=object)
    y = np.array(labels, dtype=object)
    scores: dict[float, list[float]] = {c: [] for c in params.c_grid}
    for fit_index, score_index in splitter.split(x, y):
        vectoriser = features()
        fit_x = vectoriser.fit_transform(x[fit_index])  # type: ignore[attr-defined]
        score_x = vectoriser.transform(x[score_index])  # type: ignore[attr-defined]
        for c in params.c_grid:
            predicted = _linear(c).fit(fit_x, y[fit_index]).predict(score_x)
            scores[c].append(float(f1_score(y[score_index], predicted, average="macro")))
    return [(c, float(np.mean(s))) for c, s in scores.items()]


def _metrics(texts: list[str], truth: list[str], predicted: list[str], *, training_examples: int) -> Metrics:
    by_language: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        by_language.setdefault(text_rules.detect_language(text), []).append(i)
    languages = []
    for code in sorted(by_language):
        index = by_language[code]
        t = [truth[i] for i in index]
        p = [predicted[i] for i in index]
        languages.append(LanguageScore(
            language_code=code, accuracy=float(accuracy_score(t, p)),
            macro_f1=float(f1_score(t, p, average="macro", labels=sorted(set(t)))), held_out_examples=len(index)))
    return Metrics(accuracy=float(accuracy_score(truth, predicted)),
                   macro_f1=float(f1_score(truth, predicted, average="macro")),
                   training_examples=training_examples, held_out_examples=len(truth), languages=tuple(languages))


def _fingerprint(texts: list[str], labels: list[str]) -> str:
    digest = hashlib.sha256()
    for t, y in zip(texts, labels, strict=True):
        digest.update(t.encode())
        digest.update(b"\x1e")
        digest.update(y.encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


def load(artifact: bytes, artifact_sha256: str) -> Pipeline:
    """The fitted model; FAILED_PRECONDITION when the bytes are not the registered ones (checked
    before they are unpickled)."""
    if hashlib.sha256(artifact).hexdigest() != artifact_sha256:
        raise FailedPrecondition("the classifier's stored model does not match its registered hash",
                                 reason="ARTIFACT_MISMATCH")
    model: Pipeline = pickle.loads(artifact)  # noqa: S301 - checked against the registry's hash above
    return model


def classify(model: Pipeline, text: str) -> list[tuple[str, float]]:
    """Every label with its probability, most likely first."""
    probabilities = model.predict_proba([text])[0]
    ranked = sorted(zip(model.classes_, probabilities, strict=True), key=lambda item: -item[1])
    return [(str(label), float(p)) for label, p in ranked]
