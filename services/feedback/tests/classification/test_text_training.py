"""The training core on a small bilingual set: the held-out split is honest (the file's own split
or a stratified share), rare labels are left out and named, probabilities are calibrated, and
the pickled model is checked against its hash before it is loaded."""

from __future__ import annotations

import numpy as np
import pytest

from crm_feedback.classification import training
from crmkit.errors import FailedPrecondition

Examples = tuple[list[str], list[str]]
PARAMS = training.TrainingParams(target="category", candidates=((training.TFIDF_SVC, 1.0),))


@pytest.fixture(scope="module")
def examples(category_examples: list[tuple[str, str]]) -> Examples:
    return [t for t, _ in category_examples], [y for _, y in category_examples]


def test_trains_scores_held_out_examples_per_language_and_classifies_both_languages(examples: Examples) -> None:
    texts, labels = examples
    result = training.train(texts, labels, PARAMS)
    assert result.labels == ("cards", "digital_channels", "fees_and_charges")
    m = result.metrics
    assert m.training_examples + m.held_out_examples == len(texts)
    assert m.held_out_examples == round(len(texts) * 0.2)
    assert m.macro_f1 > 0.8 and m.accuracy > 0.8
    assert {s.language_code for s in m.languages} == {"en", "zh"}
    assert sum(s.held_out_examples for s in m.languages) == m.held_out_examples
    model = training.load(result.artifact, result.artifact_sha256)
    for text, label in (("my debit card never arrived", "cards"), ("手机银行登录不了", "digital_channels")):
        ranked = training.classify(model, text)
        assert ranked[0][0] == label
        assert sum(p for _, p in ranked) == pytest.approx(1.0)
    assert result.model_version.startswith("category-")
    assert training.train(texts, labels, PARAMS).model_version == result.model_version


def test_the_files_own_split_holds_out_the_rows_from_the_given_one(examples: Examples) -> None:
    texts, labels = examples
    order = sorted(range(len(texts)), key=lambda i: i % 5)  # every label on both sides of the cut
    texts, labels = [texts[i] for i in order], [labels[i] for i in order]
    cut = len(texts) - 30
    result = training.train(texts, labels, training.TrainingParams(
        target="category", holdout_start_row=cut + 1, candidates=PARAMS.candidates))
    assert (result.metrics.training_examples, result.metrics.held_out_examples) == (cut, 30)


def test_labelswith_fewer_than_five_examples_are_left_out_and_named(examples: Examples) -> None:
    texts, labels = examples
    texts = [*texts, "a rare complaint about privacy", "another one about privacy"]
    labels = [*labels, "privacy_and_data", "privacy_and_data"]
    result = training.train(texts, labels, PARAMS)
    assert result.dropped_labels == ("privacy_and_data",)
    assert "privacy_and_data" not in result.labels


def test_one_usable_label_cannot_make_a_classifier(examples: Examples) -> None:
    texts, _ = examples
    with pytest.raises(FailedPrecondition) as error:
        training.train(texts[:20], ["cards"] * 20, PARAMS)
    assert error.value.reason == "TOO_FEW_LABELS"


def test_a_holdout_row_past_the_end_is_refused(examples: Examples) -> None:
    texts, labels = examples
    with pytest.raises(FailedPrecondition) as error:
        training.train(texts, labels, training.TrainingParams(target="category", holdout_start_row=len(texts) + 1))
    assert error.value.reason == "BAD_HOLDOUT"


def test_an_artifact_that_is_not_the_registered_one_is_not_loaded(examples: Examples) -> None:
    texts, labels = examples
    result = training.train(texts, labels, PARAMS)
    with pytest.raises(FailedPrecondition) as error:
        training.load(result.artifact + b"x", result.artifact_sha256)
    assert error.value.reason == "ARTIFACT_MISMATCH"


def test_probabilities_agree_with_the_offset_decisions_of_the_classifier(examples: Examples) -> None:
    texts, labels = examples
    # Imbalanced on purpose: every `cards` example, a few of the others.
    keep = [i for i, label in enumerate(labels) if label == "cards" or i % 6 == 0]
    x = training.features(training.NB_SVM).fit_transform([texts[i] for i in keep])
    y = [labels[i] for i in keep]
    model = training.TemperatureCalibrated(training.NbSvm(C=0.03)).fit(x, y)
    probabilities = model.predict_proba(x)
    assert probabilities.sum(axis=1) == pytest.approx(1.0)
    assert list(model.classes_[probabilities.argmax(axis=1)]) == list(model.predict(x))
    scores = model.estimator_.decision_function(x) + model.offsets_
    assert list(model.predict(x)) == list(model.classes_[scores.argmax(axis=1)]), "the estimator's scores + offsets"
    assert model.temperature_ > 0


def test_offsets_raise_the_macro_f1_of_a_cautious_rare_label_and_leave_a_clean_split_alone() -> None:
    rng = np.random.default_rng(7)
    index = np.array([0] * 900 + [1] * 100)
    # The rare label 1 scores above 0 for its own rows only now and then: argmax misses most of them.
    scores = np.column_stack([np.zeros(1000), np.where(index == 1, rng.normal(-0.2, 0.5, 1000),
                                                       rng.normal(-1.5, 0.5, 1000))])
    before = training._macro_f1(scores.argmax(axis=1), index, 2)
    offsets = training._fit_offsets(scores, index)
    assert training._macro_f1((scores + offsets).argmax(axis=1), index, 2) > before + 0.05
    clean = np.eye(3)[np.repeat([0, 1, 2], 50)]
    assert list(training._fit_offsets(clean, np.repeat([0, 1, 2], 50))) == [0.0, 0.0, 0.0], "no move when none helps"
