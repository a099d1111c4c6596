"""crm.feedback.v1 text classifier messages <-> the classification core's values."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crm.feedback.v1 import classification_pb2 as cl
from crm_feedback.classification import text as text_rules
from crm_feedback.classification.model import Classification, RegisteredClassifier, TrainingRequest
from crmkit.resources import ResourceName

TEXT_CLASSIFIER_NAME = ResourceName("textClassifiers/{text_classifier_id}")
TOP_CATEGORIES = 5


def to_request(spec: cl.TextClassifierTrainingSpec) -> TrainingRequest:
    return TrainingRequest(
        target=spec.target, file=spec.file, text_column=spec.text_column, label_column=spec.label_column,
        label_mapping=tuple(sorted(spec.label_mapping.items())), holdout_start_row=spec.holdout_start_row,
        holdout_fraction=spec.holdout_fraction, random_seed=spec.random_seed, activate=spec.activate,
        description=spec.description)


def to_spec(request: TrainingRequest) -> cl.TextClassifierTrainingSpec:
    """The spec as trained, defaults filled in."""
    return cl.TextClassifierTrainingSpec(
        target=cl.TextClassifierTarget.ValueType(request.target), file=request.file,
        text_column=request.text_column, label_column=request.label_column,
        label_mapping=dict(request.label_mapping), holdout_start_row=request.holdout_start_row,
        holdout_fraction=request.holdout_fraction, random_seed=request.random_seed, activate=request.activate,
        description=request.description)


def to_proto(model: RegisteredClassifier) -> cl.TextClassifier:
    m = model.metrics
    message = cl.TextClassifier(
        name=model.name, version=model.version, target=cl.TextClassifierTarget.ValueType(model.target),
        status=cl.TextClassifierStatus.ValueType(model.status), model_version=model.model_version,
        training_spec=cl.TextClassifierTrainingSpec.FromString(model.training_spec), labels=model.labels,
        dropped_labels=model.dropped_labels,
        metrics=cl.TextClassifierMetrics(
            accuracy=m["accuracy"], macro_f1=m["macro_f1"], training_examples=m["training_examples"],
            held_out_examples=m["held_out_examples"],
            languages=[cl.LanguageMetrics(**language) for language in m["languages"]]),
        candidates=[cl.CandidateScore(recipe=recipe, c=c, cv_macro_f1=f1) for recipe, c, f1 in model.tuning],
        algorithm=model.algorithm, training_operation=model.training_operation, creator=model.creator,
        create_time=_timestamp(model.create_time))
    if model.activate_time is not None:
        message.activate_time.CopyFrom(_timestamp(model.activate_time))
    return message


def classification_to_proto(result: Classification) -> cl.TextClassification:
    message = cl.TextClassification(language_code=result.language_code)
    category, sentiment = result.category, result.sentiment
    if category is not None:
        message.category = cl.ComplaintCategory.ValueType(text_rules.category_of(category.label))
        message.category_label = category.label
        message.confidence = category.probability
        message.category_model_version = category.model_version
        message.category_probabilities.extend(
            cl.LabelProbability(label=label, probability=p) for label, p in category.ranked[:TOP_CATEGORIES])
    if sentiment is not None:
        message.sentiment = cl.Sentiment.ValueType(text_rules.SENTIMENTS[sentiment.label])
        message.sentiment_score = sentiment.of("positive") - sentiment.of("negative")
        message.sentiment_model_version = sentiment.model_version
        message.sentiment_probabilities.extend(
            cl.LabelProbability(label=label, probability=p) for label, p in sentiment.ranked)
    message.model_version = f"{message.category_model_version}+{message.sentiment_model_version}"
    return message


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
