"""The churn file through the platform, as a bank would train on it: its customers into profile
through profile's mapping (services/profile/mappings/churn_modelling.json), risk's customer read
model filled from profile's change feed, then TrainChurnModel on that read model with `exited` as
the label attribute. Every predictive column of the file must reach risk's training features
unchanged, and the service's own recipe (gradient boosting, calibrated) must do as well as on the
raw file. Skipped without ../shared/data.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.common.v1 import operation_pb2
from crm.profile.v1 import import_pb2, profile_service_pb2_grpc
from crm.risk.v1 import churn_model_pb2 as cm
from crm.risk.v1 import risk_service_pb2 as pb
from crm.risk.v1 import risk_service_pb2_grpc
from crm_profile.app import SPEC as PROFILE
from crm_risk.app import SPEC as RISK
from crm_risk.customers.tables import customer
from crm_risk.registry.repository import read_model_snapshot
from crmkit.auth import Role
from crmkit.testing import bearer, eventually, migrated_database, running_service, serving, shared_data_dir

pytestmark = pytest.mark.slow

ADMIN = bearer(Role.ADMIN, subject="data-engineering")
TRAINER = bearer(Role.RISK_OFFICER, subject="ro-trainer")
FILE = "Churn_Modelling.csv"
ROWS = 10_000
# The file's predictive columns and the read-model features the mapping makes of them.
FEATURES = {"CreditScore": "credit_score", "Geography": "region", "Gender": "gender", "Age": "age_years",
            "Tenure": "tenure_years", "Balance": "account_balance", "NumOfProducts": "product_count",
            "HasCrCard": "has_credit_card", "IsActiveMember": "is_active_member",
            "EstimatedSalary": "estimated_salary"}
CATEGORICAL = {"Geography": {"France": "FR", "Germany": "DE", "Spain": "ES"}, "Gender": {}}


def expected_features(data: bytes) -> dict[str, dict[str, str]]:
    """Per customer id, the read-model value each predictive column of the file should arrive as."""
    rows = csv.DictReader(data.decode().splitlines())
    return {f"CHURN-{row['CustomerId']}": {feature: CATEGORICAL[column].get(row[column], row[column])
                                           if column in CATEGORICAL else row[column]
                                           for column, feature in FEATURES.items()} for row in rows}


def same(cell: object, expected: str) -> bool:
    try:
        return math.isclose(float(str(cell)), float(expected), abs_tol=1e-9)
    except ValueError:
        return str(cell) == expected


async def test_the_churn_file_trains_through_profile_and_risk(database_factory: Any, import_into_profile: Any) -> None:
    data = (shared_data_dir(FILE) / FILE).read_bytes()
    profile_url = await migrated_database(database_factory, PROFILE)
    risk_url = await migrated_database(database_factory, RISK)
    keys = {"encryption_keys": f"k1:{base64.b64encode(os.urandom(32)).decode()}", "active_key_id": "k1",
            "blind_index_key": base64.b64encode(os.urandom(32)).decode(), "matcher_enabled": False}
    async with (serving(PROFILE, database_url=profile_url, **keys) as (profile_server, _),
                grpc.aio.insecure_channel(f"127.0.0.1:{profile_server.bound_port}") as profile_channel):
        imported = await import_into_profile(profile_service_pb2_grpc.ProfileServiceStub(profile_channel), data,
                                             "churn_modelling.json", file_name=FILE, metadata=ADMIN)
        metadata = import_pb2.ImportCustomersMetadata()
        assert imported.metadata.Unpack(metadata)
        assert list(metadata.unmapped_columns) == ["RowNumber"], "every other column is a fact profile keeps"
        async with running_service(RISK, database_url=risk_url, profile_target=f"127.0.0.1:{profile_server.bound_port}",
                                   profile_feed_max_backoff_seconds=0.3, feedback_target="",
                                   alert_escalation_poll_seconds=0, operation_poll_seconds=0.1
                                   ) as (channel, runtime):
            async def labelled() -> int:
                async with runtime.db.unit_of_work(read_only=True) as uow:
                    return int(await uow.scalar(sa.select(sa.func.count()).select_from(customer).where(
                        customer.c.feature_values.has_key("exited"))) or 0)

            await eventually(labelled, until=lambda n: n == ROWS, seconds=600,
                             what="every imported customer in risk's read model, with its label")

            # What the training operation reads: every predictive column, for every customer, as the file says.
            async with runtime.db.unit_of_work(read_only=True) as uow:
                snapshot = await read_model_snapshot(uow, "exited", today=datetime.now(UTC).date())
            expected = expected_features(data)
            index = {column: i for i, column in enumerate(snapshot.columns)}
            assert set(FEATURES.values()) <= set(index)
            differing = [(row[0], feature) for row in snapshot.rows for feature, value in expected[row[0]].items()
                         if not same(row[index[feature]], value)]
            assert len(snapshot.rows) == ROWS and not differing, differing[:5]

            risk = risk_service_pb2_grpc.RiskServiceStub(channel)
            spec = cm.TrainingSpec(
                algorithm=cm.MODEL_ALGORITHM_GRADIENT_BOOSTING, features=list(FEATURES.values()),
                label_attribute="exited", data_mode=cm.TRAINING_DATA_MODE_SNAPSHOT, random_seed=7,
                snapshot=cm.SnapshotSource(read_model=True, categorical_features=["region", "gender"],
                                           age_attribute="age_years", gender_attribute="gender",
                                           region_attribute="region"))
            started = (await risk.TrainChurnModel(pb.TrainChurnModelRequest(spec=spec, request_id=str(uuid.uuid4())),
                                                  metadata=TRAINER)).operation
            final = started
            async for update in risk.WatchOperation(pb.WatchOperationRequest(name=started.name), metadata=TRAINER,
                                                    timeout=900):
                final = update.operation
            assert final.state == operation_pb2.OPERATION_STATE_SUCCEEDED, final.error.message
            model = cm.ChurnModel()
            assert final.response.Unpack(model)

    m, cv = model.metrics, model.cross_validation
    groups = {(g.dimension, g.group): g for g in model.fairness.groups}
    print(json.dumps({
        "churn_model": model.name, "roc_auc": round(m.roc_auc, 4), "pr_auc": round(m.pr_auc, 4),
        "top_decile_lift": round(m.top_decile_lift, 3), "brier_score": round(m.brier_score, 4),
        "cv_folds": cv.fold_count, "cv_mean_roc_auc": round(cv.mean_roc_auc, 4),
        "cv_std_roc_auc": round(cv.std_roc_auc, 4), "cv_mean_pr_auc": round(cv.mean_pr_auc, 4),
        "cv_mean_top_decile_lift": round(cv.mean_top_decile_lift, 3),
        "features": [(f.name, round(f.importance, 4)) for f in model.features],
        "fairness": {f"{d}={g}": {"count": x.count, "outcome": round(x.outcome_rate, 3),
                                  "selected": round(x.selection_rate, 3),
                                  "selection_ratio": round(x.selection_rate_ratio, 3), "flagged": x.flagged}
                     for (d, g), x in sorted(groups.items())}}))
    assert (m.training_rows, m.validation_rows) == (8_000, 2_000)
    assert "age_years" in {f.name for f in model.features}
    # The recipe cross-validated on the imported customers, all of them held out once. The issue's
    # goal is 0.865 (plain gradient boosting on the raw file scores about 0.862); measured 0.8667
    # (2026-12-08, the booster chosen by cross-validation on the training share; 0.8658 before),
    # so the test holds a floor just under it and the closing note reports the figure.
    assert cv.fold_count == 5 and cv.mean_roc_auc >= 0.865
    # The registered model's own split (2,000 customers) moves by about +-0.01 with the seed; seed 7
    # was fixed before any was measured and is not chosen for its score. Measured 0.8537, lift
    # 3.91, PR AUC 0.688 (the 0.865 is not met on this split; docs/risk-churn-read-model.md).
    assert m.roc_auc >= 0.852 and m.top_decile_lift >= 3.8 and m.pr_auc >= 0.68
    assert {g for d, g in groups if d == "gender"} == {"Female", "Male"}
    assert {g for d, g in groups if d == "region"} == {"DE", "ES", "FR"}
    assert {g for d, g in groups if d == "age_band"} == {"<30", "30-39", "40-49", "50-59", "60+"}
    assert sum(x.count for (d, _), x in groups.items() if d == "age_band") == m.validation_rows
