"""FeedbackService text classification through a real in-process server and PostgreSQL: training
as an operation in a spawned worker from a CSV in the training directory, the versioned registry
with held-out accuracy and macro-F1, ClassifyText in both languages, bad input, and a complaint
filed without a category getting the predicted one.

These tests run their own service on their own database: an active classifier changes what
FileComplaint does, and the session's shared service must never have one."""

from __future__ import annotations

import csv
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from crm.common.v1 import operation_pb2
from crm.feedback.v1 import classification_pb2 as cl
from crm.feedback.v1 import complaint_pb2, feedback_service_pb2_grpc
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm_feedback.app import SPEC
from crmkit.auth import Role
from crmkit.testing import (
    DatabaseFactory,
    bearer,
    error_reason,
    field_violations,
    migrated_database,
    row_counts,
    running_service,
)

ADMIN = bearer(Role.ADMIN, subject="admin-trainer")
ANALYST = bearer(Role.ANALYST)
SERVICE = bearer(Role.SERVICE, subject="campaign")
RM = bearer(Role.RELATIONSHIP_MANAGER, subject="rm-301")
SENTIMENT_MAPPING = {"0": "negative", "1": "positive", "2": "neutral"}


@pytest.fixture(scope="module")
def training_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="feedback-training-"))


@pytest.fixture(scope="module")
async def classifying(database_factory: DatabaseFactory, training_dir: Path, feedback_settings: dict[str, Any]
                      ) -> AsyncIterator[Any]:
    """A feedback service of its own, with a training directory."""
    url = await migrated_database(database_factory, SPEC)
    async with running_service(SPEC, database_url=url, training_dir=str(training_dir), operation_poll_seconds=0.05,
                               **feedback_settings) as (channel, runtime):
        yield feedback_service_pb2_grpc.FeedbackServiceStub(channel), runtime


@pytest.fixture
def feedback(classifying: Any) -> Any:
    return classifying[0]


def write_examples(directory: Path, name: str, examples: list[tuple[str, str]], *,
                   columns: tuple[str, str] = ("text", "label")) -> str:
    with (directory / name).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(examples)
    return name


def spec(file: str, target: int = cl.TEXT_CLASSIFIER_TARGET_CATEGORY, **overrides: Any
         ) -> cl.TextClassifierTrainingSpec:
    values: dict[str, Any] = dict(target=target, file=file, text_column="text", label_column="label",
                                  activate=True, random_seed=7)
    values.update(overrides)
    return cl.TextClassifierTrainingSpec(**values)


async def train(feedback: Any, training_spec: cl.TextClassifierTrainingSpec) -> operation_pb2.Operation:
    """Start training and follow the operation to its final state."""
    started = await feedback.TrainTextClassifier(
        pb.TrainTextClassifierRequest(spec=training_spec, request_id=str(uuid.uuid4())), metadata=ADMIN)
    assert started.operation.kind == "feedback.train"
    final = started.operation
    async for update in feedback.WatchOperation(pb.WatchOperationRequest(name=started.operation.name),
                                                metadata=ADMIN, timeout=300):
        final = update.operation
    return final


def classifier_of(operation: operation_pb2.Operation) -> cl.TextClassifier:
    assert operation.state == operation_pb2.OPERATION_STATE_SUCCEEDED, operation.error.message
    model = cl.TextClassifier()
    assert operation.response.Unpack(model)
    return model


async def classify(feedback: Any, text: str, language_code: str = "") -> cl.TextClassification:
    response = await feedback.ClassifyText(pb.ClassifyTextRequest(text=text, language_code=language_code),
                                           metadata=SERVICE)
    return response.classification


async def file_complaint(feedback: Any, new_complaint: Any, **overrides: Any) -> Any:
    response = await feedback.FileComplaint(pb.FileComplaintRequest(
        complaint=new_complaint(**overrides), request_id=str(uuid.uuid4())), metadata=RM)
    return response.complaint


async def test_without_a_classifier_text_is_refused_and_complaints_stay_uncategorised(feedback, new_complaint
                                                                                     ) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await classify(feedback, "my card has not arrived")
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error.value) == "NO_ACTIVE_CLASSIFIER"
    filed = await file_complaint(feedback, new_complaint, category=cl.COMPLAINT_CATEGORY_UNSPECIFIED,
                                 description="my card has not arrived")
    assert filed.category == cl.COMPLAINT_CATEGORY_UNSPECIFIED and not filed.category_predicted
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await feedback.GetTextClassifier(pb.GetTextClassifierRequest(name="textClassifiers/active-category"),
                                         metadata=ADMIN)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("text", "language", "field", "rule"), [
    ("", "", "text", "is required"),
    (" \t\n ", "", "text", "is required"),
    ("x" * 4001, "", "text", "at most 4000 characters"),
    ("my card", "fr", "language_code", "must be `zh`, `en` or empty"),
])
async def test_empty_whitespace_or_over_long_text_is_invalid_naming_the_field_and_rule(
        feedback, text: str, language: str, field: str, rule: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await classify(feedback, text, language)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rule in field_violations(error.value)[field]


async def test_a_bad_spec_is_invalid_naming_every_field_and_starts_nothing(feedback, classifying) -> None:
    before = await row_counts(classifying, "operation", "text_classifier")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await feedback.TrainTextClassifier(pb.TrainTextClassifierRequest(spec=cl.TextClassifierTrainingSpec(
            file="../secrets.csv", text_column="text", label_column="text", holdout_fraction=0.9)), metadata=ADMIN)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error.value)) == {
        "spec.target", "spec.file", "spec.label_column", "spec.holdout_fraction"}
    assert await row_counts(classifying, "operation", "text_classifier") == before


async def test_only_admins_train_and_only_platform_callers_classify(feedback) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as train_error:
        await feedback.TrainTextClassifier(pb.TrainTextClassifierRequest(spec=spec("x.csv")), metadata=ANALYST)
    assert train_error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as classify_error:
        await feedback.ClassifyText(pb.ClassifyTextRequest(text="my card"), metadata=RM)
    assert classify_error.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_missing_file_or_column_or_unmapped_sentiment_label_fails_the_operation(
        feedback, training_dir, sentiment_examples) -> None:
    missing = await train(feedback, spec("nowhere.csv"))
    assert missing.state == operation_pb2.OPERATION_STATE_FAILED
    assert missing.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "nowhere.csv" in missing.error.message
    name = write_examples(training_dir, "sentiment-raw.csv", sentiment_examples)
    no_column = await train(feedback, spec(name, text_column="comment"))
    assert no_column.state == operation_pb2.OPERATION_STATE_FAILED and "comment" in no_column.error.message
    unmapped = await train(feedback, spec(name, target=cl.TEXT_CLASSIFIER_TARGET_SENTIMENT))
    assert unmapped.state == operation_pb2.OPERATION_STATE_FAILED
    assert "label_mapping" in unmapped.error.message
    listed = await feedback.ListTextClassifiers(pb.ListTextClassifiersRequest(), metadata=ANALYST)
    assert list(listed.text_classifiers) == [], "a failed run registers nothing"


@pytest.fixture(scope="module")
async def category_classifier(classifying, training_dir, category_examples) -> cl.TextClassifier:
    name = write_examples(training_dir, "categories.csv", category_examples)
    return classifier_of(await train(classifying[0], spec(name)))


async def test_training_registers_an_active_versioned_classifier_with_held_out_metrics(
        feedback, category_classifier, category_examples) -> None:
    model = category_classifier
    assert model.status == cl.TEXT_CLASSIFIER_STATUS_ACTIVE and model.HasField("activate_time")
    assert model.target == cl.TEXT_CLASSIFIER_TARGET_CATEGORY
    assert list(model.labels) == ["cards", "digital_channels", "fees_and_charges"]
    m = model.metrics
    assert m.training_examples + m.held_out_examples == len(category_examples)
    assert m.held_out_examples == round(len(category_examples) * 0.2), "the default held-out share"
    assert 0.8 < m.macro_f1 <= 1 and 0.8 < m.accuracy <= 1
    assert {language.language_code for language in m.languages} == {"en", "zh"}
    assert model.model_version.startswith("category-") and "LinearSVC" in model.algorithm
    assert {c.recipe for c in model.candidates} == {"tfidf-svc", "nb-svm"}
    best = max(model.candidates, key=lambda c: c.cv_macro_f1)
    assert f"C={best.c:g}" in model.algorithm, "the candidate with the best cross-validated score is trained"
    assert model.training_spec.holdout_fraction == 0.2 and model.creator == "admin-trainer"
    active = (await feedback.GetTextClassifier(pb.GetTextClassifierRequest(name="textClassifiers/active-category"),
                                               metadata=ANALYST)).text_classifier
    assert active == model, "the alias answers with the registered classifier"


async def test_classify_text_gives_category_probabilities_and_model_version_in_both_languages(
        feedback, category_classifier) -> None:
    english = await classify(feedback, "My new card still has not arrived")
    assert english.category == cl.COMPLAINT_CATEGORY_CARDS and english.category_label == "cards"
    assert english.language_code == "en"
    assert english.category_model_version == category_classifier.model_version
    assert english.model_version == f"{category_classifier.model_version}+"
    assert english.category_probabilities[0].label == "cards"
    assert sum(p.probability for p in english.category_probabilities) == pytest.approx(1.0)
    assert english.confidence == english.category_probabilities[0].probability
    assert english.sentiment == cl.SENTIMENT_UNSPECIFIED, "no sentiment classifier is active yet"
    chinese = await classify(feedback, "手机银行一直闪退, 无法登录")
    assert chinese.category == cl.COMPLAINT_CATEGORY_DIGITAL_CHANNELS and chinese.language_code == "zh"


async def test_a_complaint_filed_without_a_category_gets_the_predicted_one_marked_as_predicted(
        feedback, category_classifier, new_complaint) -> None:
    predicted = await file_complaint(feedback, new_complaint, category=cl.COMPLAINT_CATEGORY_UNSPECIFIED,
                                     description="年费被重复收取了两次")
    assert predicted.category == cl.COMPLAINT_CATEGORY_FEES_AND_CHARGES and predicted.category_predicted
    assert predicted.classification.category_label == "fees_and_charges"
    assert predicted.classification.category_model_version == category_classifier.model_version
    assert 0 < predicted.classification.confidence <= 1
    given = await file_complaint(feedback, new_complaint, category=cl.COMPLAINT_CATEGORY_CARDS,
                                 description="年费被重复收取了两次")
    assert given.category == cl.COMPLAINT_CATEGORY_CARDS and not given.category_predicted
    assert not given.HasField("classification"), "a person's category is never second-guessed"

    change = complaint_pb2.Complaint(name=predicted.name, category=cl.COMPLAINT_CATEGORY_CARDS)
    updated = (await feedback.UpdateComplaint(pb.UpdateComplaintRequest(
        complaint=change, update_mask={"paths": ["category"]}), metadata=RM)).complaint
    assert updated.category == cl.COMPLAINT_CATEGORY_CARDS and not updated.category_predicted


async def test_sentiment_training_maps_labels_and_classify_text_reports_the_tone(
        feedback, category_classifier, training_dir, sentiment_examples) -> None:
    name = write_examples(training_dir, "sentiment.csv", sentiment_examples, columns=("comment", "score"))
    model = classifier_of(await train(feedback, spec(
        name, target=cl.TEXT_CLASSIFIER_TARGET_SENTIMENT, text_column="comment", label_column="score",
        label_mapping=SENTIMENT_MAPPING)))
    assert list(model.labels) == ["negative", "neutral", "positive"]
    assert model.model_version.startswith("sentiment-")
    angry = await classify(feedback, "服务太差了, 我非常生气")
    assert angry.sentiment == cl.SENTIMENT_NEGATIVE and angry.sentiment_score < 0
    assert angry.sentiment_model_version == model.model_version
    assert angry.model_version == f"{category_classifier.model_version}+{model.model_version}"
    pleased = await classify(feedback, "great service at the branch, thank you")
    assert pleased.sentiment == cl.SENTIMENT_POSITIVE and pleased.sentiment_score > 0
    assert sum(p.probability for p in pleased.sentiment_probabilities) == pytest.approx(1.0)
    assert pleased.category_label, "both classifiers read the text"


async def test_training_again_activates_the_new_version_and_retires_the_old(
        feedback, category_classifier, training_dir, category_examples) -> None:
    name = write_examples(training_dir, "categories-2.csv", category_examples[::-1])
    newer = classifier_of(await train(feedback, spec(name, random_seed=11)))
    assert newer.version > category_classifier.version and newer.status == cl.TEXT_CLASSIFIER_STATUS_ACTIVE
    old = (await feedback.GetTextClassifier(pb.GetTextClassifierRequest(name=category_classifier.name),
                                            metadata=ANALYST)).text_classifier
    assert old.status == cl.TEXT_CLASSIFIER_STATUS_RETIRED
    listed = (await feedback.ListTextClassifiers(pb.ListTextClassifiersRequest(
        target=cl.TEXT_CLASSIFIER_TARGET_CATEGORY), metadata=ANALYST)).text_classifiers
    assert [m.name for m in listed][:2] == [newer.name, category_classifier.name]
    assert (await classify(feedback, "my card was declined")).category_model_version == newer.model_version
    candidate = classifier_of(await train(feedback, spec(name, random_seed=12, activate=False)))
    assert candidate.status == cl.TEXT_CLASSIFIER_STATUS_CANDIDATE
    assert (await classify(feedback, "my card was declined")).category_model_version == newer.model_version


async def test_a_repeated_request_id_returns_the_first_operation(feedback, training_dir, category_examples) -> None:
    name = write_examples(training_dir, "categories-3.csv", category_examples)
    request = pb.TrainTextClassifierRequest(spec=spec(name, activate=False), request_id=str(uuid.uuid4()))
    first = (await feedback.TrainTextClassifier(request, metadata=ADMIN)).operation
    again = (await feedback.TrainTextClassifier(request, metadata=ADMIN)).operation
    assert again.name == first.name
    async for update in feedback.WatchOperation(pb.WatchOperationRequest(name=first.name), metadata=ADMIN,
                                                timeout=300):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED
    operations = (await feedback.ListOperations(pb.ListOperationsRequest(kind="feedback.train"),
                                                metadata=ANALYST)).operations
    assert [o.name for o in operations].count(first.name) == 1
