"""crm.risk.v1 churn model messages <-> the registry's values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from crm.risk.v1 import churn_model_pb2 as cm
from crm_risk.churn.model import GroupAttributes
from crm_risk.registry.model import RegisteredModel, TrainingRequest
from crmkit.resources import ResourceName

CHURN_MODEL_NAME = ResourceName("churnModels/{churn_model_id}")


def to_request(spec: cm.TrainingSpec) -> TrainingRequest:
    snapshot = spec.snapshot
    return TrainingRequest(
        algorithm=spec.algorithm, data_mode=spec.data_mode, features=tuple(spec.features),
        categorical_features=tuple(snapshot.categorical_features), label_attribute=spec.label_attribute,
        file=snapshot.file, id_attribute=snapshot.id_attribute,
        groups=GroupAttributes(age=snapshot.age_attribute, gender=snapshot.gender_attribute,
                               region=snapshot.region_attribute),
        hyperparameters=tuple(sorted(spec.hyperparameters.items())), validation_fraction=spec.validation_fraction,
        random_seed=spec.random_seed, description=spec.description, read_model=snapshot.read_model)


def to_spec(request: TrainingRequest) -> cm.TrainingSpec:
    """The spec as trained, defaults filled in (snapshot mode: the history fields stay unset)."""
    return cm.TrainingSpec(
        algorithm=cm.ModelAlgorithm.ValueType(request.algorithm), features=request.features,
        hyperparameters=dict(request.hyperparameters), validation_fraction=request.validation_fraction,
        random_seed=request.random_seed, description=request.description,
        data_mode=cm.TrainingDataMode.ValueType(request.data_mode), label_attribute=request.label_attribute,
        snapshot=cm.SnapshotSource(file=request.file, id_attribute=request.id_attribute,
                                   categorical_features=request.categorical_features,
                                   age_attribute=request.groups.age, gender_attribute=request.groups.gender,
                                   region_attribute=request.groups.region, read_model=request.read_model))


def to_proto(model: RegisteredModel) -> cm.ChurnModel:
    m = model.metrics
    message = cm.ChurnModel(
        name=model.name, churn_model_id=model.churn_model_id, version=model.version, etag=model.etag,
        status=cm.ChurnModelStatus.ValueType(model.status),
        training_spec=cm.TrainingSpec.FromString(model.training_spec),
        features=[cm.ModelFeature(name=f["name"], importance=f["importance"]) for f in model.features],
        metrics=cm.ModelMetrics(roc_auc=m["roc_auc"], pr_auc=m["pr_auc"], brier_score=m["brier_score"],
                                log_loss=m["log_loss"], positive_rate=m["positive_rate"],
                                top_decile_lift=m["top_decile_lift"], training_rows=m["training_rows"],
                                validation_rows=m["validation_rows"]),
        band_thresholds=cm.RiskBandThresholds(**model.band_thresholds),
        training_data_sha256=model.training_data_sha256, artifact_sha256=model.artifact_sha256,
        framework_version=model.framework_version, training_operation=model.training_operation,
        creator=model.creator, create_time=_timestamp(model.create_time), promoter=model.promoter,
        status_reason=model.status_reason, fairness=_fairness(model.fairness))
    if model.cross_validation is not None:
        message.cross_validation.CopyFrom(_cross_validation(model.cross_validation))
    if model.promote_time is not None:
        message.promote_time.CopyFrom(_timestamp(model.promote_time))
    if model.retire_time is not None:
        message.retire_time.CopyFrom(_timestamp(model.retire_time))
    return message


def _cross_validation(cv: dict[str, Any]) -> cm.CrossValidationMetrics:
    folds = cv["folds"]
    return cm.CrossValidationMetrics(
        fold_count=len(folds), mean_roc_auc=cv["mean_roc_auc"], std_roc_auc=cv["std_roc_auc"],
        mean_pr_auc=cv["mean_pr_auc"], mean_brier_score=cv["mean_brier_score"],
        mean_top_decile_lift=sum(f["top_decile_lift"] for f in folds) / len(folds) if folds else 0.0)


def _fairness(report: dict[str, Any]) -> cm.FairnessReport:
    groups = []
    for g in report["groups"]:
        group = cm.GroupFairness(
            dimension=g["dimension"], group=g["group"], count=g["count"], outcome_rate=g["outcome_rate"],
            mean_score=g["mean_score"], selection_rate=g["selection_rate"],
            selection_rate_ratio=g["selection_rate_ratio"], flagged=g["flagged"], small_sample=g["small_sample"])
        if g["true_positive_rate"] is not None:
            group.true_positive_rate = g["true_positive_rate"]
        if g["true_positive_rate_ratio"] is not None:
            group.true_positive_rate_ratio = g["true_positive_rate_ratio"]
        groups.append(group)
    return cm.FairnessReport(threshold=report["threshold"], ratio=report["ratio"], groups=groups)


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
