"""Propensity model messages <-> the propensity domain."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from crm.campaign.v1 import propensity_pb2 as pb
from crm_campaign.propensity.model import PropensityModel
from crmkit.resources import ResourceName

MODEL = ResourceName("propensityModels/{offer_type}/versions/{version}",
                     id_pattern={"offer_type": r"[a-z][a-z0-9-]{0,63}", "version": r"latest|[1-9][0-9]{0,17}"})


def name_of(model: PropensityModel) -> str:
    return f"propensityModels/{model.offer_type}/versions/{model.version}"


def parse_name(name: str) -> tuple[str, int | None]:
    """(offer type, version or None for the newest)."""
    offer_type, version = MODEL.parse(name, required=True)
    return offer_type, None if version == "latest" else int(version)


def to_proto(model: PropensityModel) -> pb.PropensityModel:
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(model.created_at)
    m = model.metrics
    return pb.PropensityModel(
        name=name_of(model), offer_type=model.offer_type, version=model.version, algorithm=model.algorithm,
        features=list(model.features), data_fingerprint=model.data_fingerprint, seed=model.seed,
        creator=model.creator, create_time=created,
        metrics=pb.PropensityMetrics(
            roc_auc=m.roc_auc, average_precision=m.average_precision, brier_score=m.brier_score,
            expected_calibration_error=m.expected_calibration_error, training_rows=m.training_rows,
            held_out_rows=m.held_out_rows, positive_rate=m.positive_rate))
