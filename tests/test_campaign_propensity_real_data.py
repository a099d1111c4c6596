"""The UCI bank-marketing file through both services, as a bank would load it: its customers into
profile through profile's mapping (services/profile/mappings/bank_marketing.json), its calls into
campaign through campaign's (services/campaign/mappings/bank_marketing_contacts.json), the same
`UCI-BANK-<line>` ids in both. Campaign copies the customers' features from profile's change feed,
then trains a term-deposit propensity model on the calls plus those features, and reports its
held-out metrics. Skipped without ../shared/data.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import json_format

import crm_campaign
from crm.campaign.v1 import campaign_service_pb2 as cpb
from crm.campaign.v1 import campaign_service_pb2_grpc
from crm.campaign.v1 import contact_import_pb2 as ci
from crm.campaign.v1 import propensity_pb2 as pp
from crm.common.v1 import operation_pb2
from crm.profile.v1 import profile_service_pb2_grpc
from crm_campaign.app import SPEC as CAMPAIGN
from crm_campaign.propensity.tables import customer_feature
from crm_profile.app import SPEC as PROFILE
from crmkit.auth import Role
from crmkit.testing import bearer, eventually, migrated_database, running_service, serving, shared_data_dir

pytestmark = pytest.mark.slow

ADMIN = bearer(Role.ADMIN, subject="data-engineering")
MARKETER = bearer(Role.MARKETER, subject="marketing-analytics")
FILE = "bank-additional-full.csv"
ROWS = 41_188


def mapping(package: Any, name: str) -> dict[str, Any]:
    return json.loads((Path(package.__file__).resolve().parents[2] / "mappings" / name).read_text())


async def finished(campaigns: Any, started: operation_pb2.Operation) -> operation_pb2.Operation:
    final = started
    async for update in campaigns.WatchOperation(cpb.WatchOperationRequest(name=started.name), metadata=MARKETER,
                                                 timeout=900):
        final = update.operation
    assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
    return final


async def test_calls_and_profile_customers_train_a_term_deposit_model(database_factory: Any,
                                                                      import_into_profile: Any) -> None:
    data = (shared_data_dir(FILE) / FILE).read_bytes()
    profile_url = await migrated_database(database_factory, PROFILE)
    campaign_url = await migrated_database(database_factory, CAMPAIGN)
    keys = {"encryption_keys": f"k1:{base64.b64encode(os.urandom(32)).decode()}", "active_key_id": "k1",
            "blind_index_key": base64.b64encode(os.urandom(32)).decode(), "matcher_enabled": False}
    async with (serving(PROFILE, database_url=profile_url, **keys) as (profile_server, _),
                grpc.aio.insecure_channel(f"127.0.0.1:{profile_server.bound_port}") as profile_channel):
        target = f"127.0.0.1:{profile_server.bound_port}"
        await import_into_profile(profile_service_pb2_grpc.ProfileServiceStub(profile_channel), data,
                                  "bank_marketing.json", file_name=FILE, metadata=ADMIN)
        async with running_service(CAMPAIGN, database_url=campaign_url, profile_target=target,
                                   feed_max_backoff_seconds=0.3, dispatcher_enabled=False, segment_target="",
                                   feedback_target="", risk_target="") as (channel, runtime):
            campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channel)

            async def copied() -> int:
                async with runtime.db.unit_of_work(read_only=True) as uow:
                    return int((await uow.execute(sa.select(sa.func.count()).select_from(customer_feature))
                                ).scalar_one())

            await eventually(copied, until=lambda n: n == ROWS, seconds=600,
                             what="every customer's features copied from profile's feed")
            contacts = mapping(crm_campaign, "bank_marketing_contacts.json")
            body = json_format.ParseDict({**contacts["request"], "fileName": FILE, "requestId": str(uuid.uuid4())},
                                         ci.ImportContactHistoryRequest())
            body.content = data
            imported = await finished(campaigns, (await campaigns.ImportContactHistory(body, metadata=MARKETER)
                                                  ).operation)
            result = ci.ImportContactHistoryResult()
            assert imported.response.Unpack(result)
            assert (result.inserted_count, result.bad_row_count) == (ROWS, 0)
            trained = await finished(campaigns, (await campaigns.TrainPropensityModel(
                pp.TrainPropensityModelRequest(offer_type="term-deposit", request_id=str(uuid.uuid4())),
                metadata=MARKETER)).operation)
            model = pp.PropensityModel()
            assert trained.response.Unpack(model)
    print(json.dumps({"propensity_model": model.name, "roc_auc": round(model.metrics.roc_auc, 4),
                      "average_precision": round(model.metrics.average_precision, 4),
                      "brier_score": round(model.metrics.brier_score, 4),
                      "features": list(model.features)}))
    assert {"customer.occupation", "customer.attributes.education_level"} <= set(model.features)
    assert not any("duration" in feature for feature in model.features)
    assert model.metrics.expected_calibration_error < 0.02
    # The goal is 0.81; see docs/campaign-propensity.md for what was measured.
    assert model.metrics.roc_auc >= 0.80
