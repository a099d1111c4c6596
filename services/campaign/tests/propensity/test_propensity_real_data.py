"""The UCI bank-marketing calls through the platform path: the contacts import through the shipped
mapping (services/campaign/mappings/bank_marketing_contacts.json) with ImportContactHistory, a
term-deposit propensity model trains through TrainPropensityModel, and the service reports its
held-out ROC AUC, without the call-duration column (known only after the call).

Skipped when ../shared/data is absent. 41,188 contacts, so on a campaign service and database
of its own: the session's shared database stays small.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

import crm_campaign
from crm.campaign.v1 import campaign_service_pb2 as pb
from crm.campaign.v1 import campaign_service_pb2_grpc
from crm.campaign.v1 import contact_import_pb2 as ci
from crm.campaign.v1 import propensity_pb2 as pp
from crm.common.v1 import operation_pb2
from crm_campaign.app import SPEC
from crmkit.auth import Role
from crmkit.testing import DatabaseFactory, bearer, migrated_database, running_service, shared_data_dir

MARKETER = bearer(Role.MARKETER, subject="marketing-analytics")
MAPPINGS = Path(crm_campaign.__file__).resolve().parents[2] / "mappings"
FILE = "bank-additional-full.csv"


@pytest.fixture(scope="module")
async def own_campaign(database_factory: DatabaseFactory) -> AsyncIterator[Any]:
    """A campaign service on a database of its own, for these tests only."""
    shared_data_dir(FILE)
    url = await migrated_database(database_factory, SPEC)
    async with running_service(SPEC, database_url=url, dispatcher_enabled=False, feedback_target="",
                               segment_target="", profile_target="", risk_target="") as (channel, _):
        yield campaign_service_pb2_grpc.CampaignServiceStub(channel)


async def finished(campaigns: Any, started: operation_pb2.Operation) -> operation_pb2.Operation:
    final = started
    async for update in campaigns.WatchOperation(pb.WatchOperationRequest(name=started.name), metadata=MARKETER,
                                                 timeout=900):
        final = update.operation
    return final


@pytest.mark.slow  # 41,188 contacts imported, then one model trained: about a minute on two shared cores
async def test_bank_marketing_calls_train_a_calibrated_term_deposit_model(own_campaign) -> None:
    mapping = json.loads((MAPPINGS / "bank_marketing_contacts.json").read_text())
    assert mapping["file"] == FILE
    content = (shared_data_dir(FILE) / FILE).read_bytes()
    body = json_format.ParseDict({**mapping["request"], "fileName": FILE, "requestId": str(uuid.uuid4())},
                                 ci.ImportContactHistoryRequest())
    body.content = content
    imported = await finished(own_campaign, (await own_campaign.ImportContactHistory(body, metadata=MARKETER)
                                             ).operation)
    assert imported.state == operation_pb2.OPERATION_STATE_SUCCEEDED, imported.error.message
    result = ci.ImportContactHistoryResult()
    assert imported.response.Unpack(result)
    assert (result.inserted_count, result.bad_row_count) == (41_188, 0)
    metadata = ci.ImportContactHistoryMetadata()
    assert imported.metadata.Unpack(metadata)
    assert "duration" in metadata.unmapped_columns

    trained = await finished(own_campaign, (await own_campaign.TrainPropensityModel(pp.TrainPropensityModelRequest(
        offer_type="term-deposit", request_id=str(uuid.uuid4())), metadata=MARKETER)).operation)
    assert trained.state == operation_pb2.OPERATION_STATE_SUCCEEDED, trained.error.message
    model = (await own_campaign.GetPropensityModel(pp.GetPropensityModelRequest(
        name="propensityModels/term-deposit/versions/latest"), metadata=MARKETER)).propensity_model
    print(json.dumps({"propensity_model": model.name, "roc_auc": round(model.metrics.roc_auc, 4),
                      "average_precision": round(model.metrics.average_precision, 4),
                      "brier_score": round(model.metrics.brier_score, 4),
                      "expected_calibration_error": round(model.metrics.expected_calibration_error, 4),
                      "held_out_rows": model.metrics.held_out_rows}))
    assert not any("duration" in feature for feature in model.features)
    assert model.metrics.held_out_rows + model.metrics.training_rows == 41_188
    assert model.metrics.expected_calibration_error < 0.02
    # The goal is >= 0.81, not met. Measured here: 0.8072 on this split (2026-12-08; 0.804
    # to 0.818 over other seeds, 0.803 in 5-fold cross-validation of the training share, and no
    # recipe tried did better there by more than the folds' noise; docs/campaign-propensity.md),
    # so the test holds just under the level reached rather than a split picked to pass the goal.
    assert model.metrics.roc_auc >= 0.805
