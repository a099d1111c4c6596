"""Clustering protos <-> domain values. Nothing else: no rules, no I/O. `run_to_proto` is also the
clustering operation's response, made in the worker process (a module-level function pickles)."""

from __future__ import annotations

from crm.common.v1 import operation_pb2
from crm.segment.v1 import analytics_pb2
from crm_segment.clusters.model import Cluster, ClusteringRun
from crm_segment.clusters.service import RUN_NAME
from crmkit.values import set_timestamps


def run_to_proto(run: ClusteringRun) -> analytics_pb2.ClusteringRun:
    spec = run.spec
    message = analytics_pb2.ClusteringRun(
        name=RUN_NAME.format(run.run_id), display_name=spec.display_name,
        state=operation_pb2.OperationState.ValueType(run.state), operation=f"operations/{run.operation_id}",
        features=spec.features,
        population_segment=f"segments/{spec.population_segment_id}" if spec.population_segment_id else "",
        requested_cluster_count=spec.cluster_count, cluster_count=run.cluster_count, random_seed=spec.random_seed,
        customer_count=run.customer_count, excluded_count=run.excluded_count, silhouette_score=run.silhouette_score,
        creator=run.creator, min_cluster_count=spec.min_cluster_count, max_cluster_count=spec.max_cluster_count,
        missing_values=analytics_pb2.ClusteringMissingValues.ValueType(spec.missing_values),
        silhouette_scores=[analytics_pb2.SilhouetteScore(cluster_count=s.cluster_count, score=s.score)
                           for s in run.silhouette_scores],
        silhouette_sampled=run.silhouette_sampled, run_version=run.run_version)
    set_timestamps(message, create_time=run.created_at, end_time=run.ended_at, features_as_of=run.features_as_of)
    return message


def cluster_to_proto(run_id: str, cluster: Cluster) -> analytics_pb2.Cluster:
    return analytics_pb2.Cluster(
        name=f"{RUN_NAME.format(run_id)}/clusters/{cluster.cluster_id}", label=cluster.label, size=cluster.size,
        share=cluster.share, cluster_id=cluster.cluster_id,
        distinguishing_features=cluster.distinguishing_features,
        feature_profiles=[analytics_pb2.FeatureProfile(
            feature=p.feature, mean=p.mean, population_mean=p.population_mean,
            population_standard_deviation=p.population_standard_deviation,
            standardised_difference=p.standardised_difference) for p in cluster.feature_profiles])
