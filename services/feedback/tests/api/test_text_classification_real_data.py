"""Text classifiers trained and measured through the service's own RPCs on the labelled public
data in ../shared/data (see its README): English intents (BANKING77, its own train/test split),
Chinese sentiment on bank products (a stratified 20 % held out), and CFPB complaint products as
a smoke test. Goals: macro-F1 >= 0.90 on BANKING77 (README TF-IDF baseline 0.894, met: 0.915) and
>= 0.68 on the Chinese set (baseline 0.656; met: 0.692). Slow: each run trains on thousands of
examples in a worker (BANKING77: about 3 minutes on 2 loaded cores)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crm.common.v1 import operation_pb2
from crm.feedback.v1 import classification_pb2 as cl
from crm.feedback.v1 import feedback_service_pb2 as pb
from crm.feedback.v1 import feedback_service_pb2_grpc
from crm_feedback.app import SPEC
from crmkit.auth import Role
from crmkit.testing import DatabaseFactory, bearer, migrated_database, running_service, shared_data_dir

pytestmark = pytest.mark.slow

ADMIN = bearer(Role.ADMIN, subject="admin-trainer")
SERVICE = bearer(Role.SERVICE, subject="campaign")
FILES = ("banking77_intents.csv", "bank_product_reviews_sentiment_zh.csv", "cfpb_complaints_sample.csv")
# README: rows 1-10,003 are BANKING77's original train split, 10,004-13,083 its test split.
BANKING77_TEST_FROM = 10_004


@pytest.fixture(scope="module")
async def feedback(database_factory: DatabaseFactory, feedback_settings: dict[str, Any]) -> AsyncIterator[Any]:
    """A feedback service of its own whose training directory is the shared data folder."""
    data = shared_data_dir(*FILES)
    url = await migrated_database(database_factory, SPEC)
    async with running_service(SPEC, database_url=url, training_dir=str(data), operation_poll_seconds=0.2,
                               **feedback_settings) as (channel, _):
        yield feedback_service_pb2_grpc.FeedbackServiceStub(channel)


async def train(feedback: Any, spec: cl.TextClassifierTrainingSpec) -> cl.TextClassifier:
    started = await feedback.TrainTextClassifier(
        pb.TrainTextClassifierRequest(spec=spec, request_id=str(uuid.uuid4())), metadata=ADMIN)
    final = started.operation
    async for update in feedback.WatchOperation(pb.WatchOperationRequest(name=final.name), metadata=ADMIN,
                                                timeout=1200):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    model = cl.TextClassifier()
    assert final.response.Unpack(model)
    m = model.metrics
    print(f"\n{spec.file}: accuracy {m.accuracy:.4f}, macro-F1 {m.macro_f1:.4f} "
          f"({m.training_examples} trained, {m.held_out_examples} held out; {model.algorithm}); "
          + ", ".join(f"{x.language_code}: acc {x.accuracy:.4f} F1 {x.macro_f1:.4f} n={x.held_out_examples}"
                      for x in m.languages))
    return model


@pytest.mark.timeout(1800)
async def test_banking77_intents_beat_the_tfidf_baseline_on_the_original_test_split(feedback) -> None:
    model = await train(feedback, cl.TextClassifierTrainingSpec(
        target=cl.TEXT_CLASSIFIER_TARGET_CATEGORY, file="banking77_intents.csv", text_column="text",
        label_column="label", holdout_start_row=BANKING77_TEST_FROM, activate=True))
    assert (model.metrics.training_examples, model.metrics.held_out_examples) == (10_003, 3_080)
    assert len(model.labels) == 77
    assert model.metrics.macro_f1 >= 0.90, "goal: macro-F1 >= 0.90 (README baseline 0.894)"
    reading = (await feedback.ClassifyText(pb.ClassifyTextRequest(text="I still have not received my new card"),
                                           metadata=SERVICE)).classification
    assert reading.category_label == "card_arrival"
    assert reading.category == cl.COMPLAINT_CATEGORY_UNSPECIFIED, "an intent is finer than the taxonomy"


@pytest.mark.timeout(1800)
async def test_chinese_bank_product_sentiment_beats_the_tfidf_baseline_on_a_held_out_fifth(feedback) -> None:
    model = await train(feedback, cl.TextClassifierTrainingSpec(
        target=cl.TEXT_CLASSIFIER_TARGET_SENTIMENT, file="bank_product_reviews_sentiment_zh.csv",
        text_column="text", label_column="label", label_mapping={"0": "negative", "1": "positive", "2": "neutral"},
        holdout_fraction=0.2, random_seed=42, activate=True))
    m = model.metrics
    assert m.held_out_examples == 1506
    assert [x.language_code for x in m.languages if x.held_out_examples > 100] == ["zh"]
    # The goal. Measured 2026-12-07 on this split: 0.692 (recipe, C and the per-label
    # macro-F1 offsets all fitted by cross-validation on the training part; no setting was tuned on
    # these held-out rows). Before the offsets: 0.679. Nested 5-fold over the whole set gives
    # 0.678 +- 0.030, so this split sits a little above the data set's level (docs/text-classification.md).
    assert m.macro_f1 >= 0.68, "goal 0.68 (README TF-IDF baseline 0.656)"
    reading = (await feedback.ClassifyText(pb.ClassifyTextRequest(text="额度被降了, 打客服电话也没人管, 太差了"),
                                           metadata=SERVICE)).classification
    assert reading.sentiment == cl.SENTIMENT_NEGATIVE and reading.language_code == "zh"


@pytest.mark.timeout(1800)
async def test_cfpb_complaint_products_smoke(feedback) -> None:
    model = await train(feedback, cl.TextClassifierTrainingSpec(
        target=cl.TEXT_CLASSIFIER_TARGET_CATEGORY, file="cfpb_complaints_sample.csv", text_column="narrative",
        label_column="product", holdout_fraction=0.2, random_seed=42))
    assert model.status == cl.TEXT_CLASSIFIER_STATUS_CANDIDATE
    assert len(model.labels) == 9 and len(model.dropped_labels) == 4, "products with fewer than 5 rows are left out"
    assert model.metrics.accuracy > 0.7 and model.metrics.macro_f1 > 0.4
