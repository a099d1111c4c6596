"""Scoring with registered propensity models (propensity.scoring, propensity.scorers): the artifact
is checked against its registered hash before it is unpickled, customers without the model's
features are left to the fallback, and an audience is scored by several offer types' models at
once, customers alike sharing their results."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_campaign.propensity import scoring, training
from crm_campaign.propensity.model import LatestVersion, TrainedModel, TrainingParams, TrainingRow
from crm_campaign.propensity.repository import PropensityRepository
from crm_campaign.propensity.scorers import PropensityScorers

AT = datetime(2026, 12, 7, 10, tzinfo=UTC)
SMS, APP = 3, 2


def trained(keen: str, *, seed: int) -> TrainedModel:
    """A model of 600 contacts where customers with occupation `keen` accept on the app."""
    rng = random.Random(seed)
    rows = []
    for i in range(600):
        job, channel = rng.choice(["student", "retired"]), rng.choice([SMS, APP])
        chance = 0.05 + (0.7 if job == keen and channel == APP else 0.0)
        rows.append(TrainingRow(customer_id=f"h{i}", accepted=rng.random() < chance, fields={"channel": channel},
                                context={}, customer={"occupation": job}))
    return training.train(training.TrainingJob(params=TrainingParams("x", 0.2, seed), rows=rows))


@pytest.fixture(scope="module")
def students() -> TrainedModel:
    return trained("student", seed=1)


def test_the_artifact_must_match_its_registered_hash(students: TrainedModel) -> None:
    version = LatestVersion("loan", 1, students.artifact_sha256)
    scorer = scoring.load(version, students.artifact)
    assert scorer.reads_channel and scorer.customer_features == ("occupation",)
    with pytest.raises(scoring.ArtifactMismatch):
        scoring.load(version, students.artifact + b"\x00")
    with pytest.raises(scoring.ArtifactMismatch):
        scoring.load(LatestVersion("loan", 1, "0" * 64), students.artifact)


def test_customers_without_the_models_features_are_not_scored(students: TrainedModel) -> None:
    scorer = scoring.load(LatestVersion("loan", 1, students.artifact_sha256), students.artifact)
    found = scoring.probabilities(scorer, {"s": {"occupation": "student"}, "r": {"occupation": "retired"},
                                           "unknown": {"attributes.vip": True}}, [SMS, APP], at=AT)
    assert set(found) == {"s", "r"}
    assert found["s"][APP] > 0.5 > found["s"][SMS] and found["r"][APP] < 0.3


async def test_an_audience_is_scored_by_each_offer_types_newest_model(campaign_service: Any, students: TrainedModel
                                                                      ) -> None:
    _, runtime = campaign_service
    tag = uuid.uuid4().hex[:8]
    loan, card, none = f"loan-{tag}", f"card-{tag}", f"none-{tag}"
    repository = PropensityRepository()
    async with runtime.db.raw() as connection:
        await repository.insert(connection, params=TrainingParams(loan, 0.2, 1), trained=students, creator="t")
        await repository.insert(connection, params=TrainingParams(card, 0.2, 2), trained=trained("retired", seed=2),
                                creator="t")
    scorers = PropensityScorers(db=runtime.db, repository=repository)
    try:
        customers = {f"c{n}": {"occupation": "student" if n % 2 else "retired"} for n in range(6)}
        customers["stranger"] = {}
        found = await scorers.audience([loan, card, none], customers, [SMS, APP], at=AT)
    finally:
        await scorers.close()
    assert set(found) == {f"c{n}" for n in range(6)}, "a customer without features keeps the fallback"
    student, retired = found["c1"], found["c0"]
    assert set(student) == {loan, card}, "an offer type without a model scores nobody"
    assert student[loan].model == f"propensityModels/{loan}/versions/1"
    assert student[loan].on(APP) > 0.5 > retired[loan].on(APP)  # type: ignore[operator]
    assert retired[card].on(APP) > 0.5 > student[card].on(APP)  # type: ignore[operator]
    assert found["c3"] is student, "customers alike share one result"
