"""Clustering and cross-sell mining through a real in-process server on PostgreSQL.

Each test seeds its own customers into the read model under a fresh branch and makes them a
materialised segment, the run's population, so tests sharing the database never see each
other's customers. Runs go through the operation machinery into a spawned worker process.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.common.v1 import operation_pb2
from crm.segment.v1 import analytics_pb2, segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.features.tables import customer_feature
from crmkit.auth import Role
from crmkit.testing import bearer, error_info, eventually, field_violations, row_counts

ANALYST = bearer(Role.ANALYST, subject="analyst-1")
MARKETER = bearer(Role.MARKETER, subject="marketer-1")
SUCCEEDED, FAILED = operation_pb2.OPERATION_STATE_SUCCEEDED, operation_pb2.OPERATION_STATE_FAILED
FINAL = (SUCCEEDED, FAILED, operation_pb2.OPERATION_STATE_CANCELLED)
# A spawned worker imports scikit-learn on its first job, on a shared machine.
WORKER_SECONDS = 180.0
RUN_TABLES = ("clustering_run", "cluster", "cluster_assignment", "association_run", "association_rule",
              "operation", "idempotency_key")


def new_branch() -> str:
    return f"B-{uuid.uuid4().hex[:12]}"


async def seed(service: tuple[Any, Any], branch_id: str, rows: list[dict[str, Any]]) -> list[str]:
    """Customers `{branch}-c000`, ... with the given read-model columns; their ids."""
    _, runtime = service
    full = [{"customer_id": f"{branch_id}-c{i:03d}", "branch_id": branch_id,
             "features_as_of": datetime(2026, 12, 1, tzinfo=UTC), **row} for i, row in enumerate(rows)]
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.insert(customer_feature), full)
    return [row["customer_id"] for row in full]


async def finished(segments: Any, operation: str) -> operation_pb2.Operation:
    async def get() -> operation_pb2.Operation:
        return (await segments.GetOperation(pb.GetOperationRequest(name=operation), metadata=ANALYST)).operation

    return await eventually(get, until=lambda op: op.state in FINAL, seconds=WORKER_SECONDS, interval=0.2,
                            what="the operation to finish")


async def population(segments: Any, branch_id: str) -> str:
    """A materialised segment holding the branch's customers; its name."""
    suffix = uuid.uuid4().hex[:10]
    created = await segments.CreateSegment(pb.CreateSegmentRequest(segment=segment_pb2.Segment(
        segment_id=f"population-{suffix}", display_name=f"Population {suffix}",
        rule=f'branch_id == "{branch_id}"')), metadata=ANALYST)
    started = await segments.MaterialiseSegment(pb.MaterialiseSegmentRequest(name=created.segment.name),
                                                metadata=ANALYST)
    assert (await finished(segments, started.operation.name)).state == SUCCEEDED
    return created.segment.name


def three_groups() -> list[dict[str, Any]]:
    """30 customers in three tight groups of (aum, age) sizes 12, 10 and 8, plus two without an
    age (left out under DROP)."""
    rows = []
    for size, aum, age in ((12, 20_000, 25), (10, 600_000, 45), (8, 3_000_000, 68)):
        rows += [{"aum": aum + 1_000 * i, "age_years": age + i % 3} for i in range(size)]
    return rows + [{"aum": 50_000, "age_years": None}, {"aum": 70_000, "age_years": None}]


async def start_clustering(segments: Any, **fields: Any) -> pb.StartClusteringResponse:
    request = pb.StartClusteringRequest(display_name="Wealth by age", features=["aum", "age"], **fields)
    return await segments.StartClustering(request, metadata=ANALYST)


# --- clustering -------------------------------------------------------------------------------


async def test_a_clustering_run_finds_the_groups_chooses_k_and_makes_cluster_id_segmentable(
        segments, segment_service) -> None:
    branch_id = new_branch()
    ids = await seed(segment_service, branch_id, three_groups())
    people = await population(segments, branch_id)

    started = await start_clustering(segments, population_segment=people, cluster_count=0, min_cluster_count=2,
                                     max_cluster_count=5, random_seed=7, request_id=str(uuid.uuid4()))
    assert started.operation.metadata.Is(pb.StartClusteringRequest.DESCRIPTOR)
    pending = (await segments.GetClusteringRun(pb.GetClusteringRunRequest(name=started.clustering_run),
                                               metadata=MARKETER)).clustering_run
    assert pending.name == started.clustering_run and pending.cluster_count == 0

    done = await finished(segments, started.operation.name)
    assert done.state == SUCCEEDED, done.error
    response = analytics_pb2.ClusteringRun()
    assert done.response.Unpack(response) and response.name == started.clustering_run

    run = (await segments.GetClusteringRun(pb.GetClusteringRunRequest(name=started.clustering_run),
                                           metadata=MARKETER)).clustering_run
    assert run.state == SUCCEEDED and run.HasField("end_time")
    assert run.cluster_count == 3, [(s.cluster_count, s.score) for s in run.silhouette_scores]
    assert [s.cluster_count for s in run.silhouette_scores] == [2, 3, 4, 5]
    assert (run.customer_count, run.excluded_count) == (30, 2)
    assert run.random_seed == 7 and run.min_cluster_count == 2 and run.max_cluster_count == 5
    assert run.silhouette_score > 0.8 and len(run.run_version) == 16

    clusters = (await segments.ListClusters(pb.ListClustersRequest(parent=run.name), metadata=MARKETER)).clusters
    assert [c.size for c in clusters] == [12, 10, 8] and [c.cluster_id for c in clusters] == [1, 2, 3]
    assert clusters[0].name == f"{run.name}/clusters/1"
    assert math.isclose(sum(c.share for c in clusters), 1.0)
    aum = {c.cluster_id: next(p for p in c.feature_profiles if p.feature == "aum") for c in clusters}
    # Centroids in CNY, not in standard deviations.
    assert aum[1].mean == pytest.approx(20_000 + 1_000 * 5.5)
    assert aum[3].mean == pytest.approx(3_000_000 + 1_000 * 3.5)
    assert aum[3].standardised_difference > 1 > 0 > aum[1].standardised_difference
    assert "aum" in clusters[2].distinguishing_features and clusters[2].label.startswith("high ")

    # Paging: one cluster a page, the same three.
    first = await segments.ListClusters(pb.ListClustersRequest(parent=run.name, page_size=2), metadata=MARKETER)
    second = await segments.ListClusters(pb.ListClustersRequest(parent=run.name, page_size=2,
                                                                page_token=first.next_page_token), metadata=MARKETER)
    assert [c.cluster_id for c in [*first.clusters, *second.clusters]] == [1, 2, 3] and not second.next_page_token

    # The latest completed run's clusters are a feature of the catalogue that rules can use.
    oldest = await segments.PreviewSegment(pb.PreviewSegmentRequest(
        rule=f'branch_id == "{branch_id}" && cluster_id == 3', sample_size=50), metadata=MARKETER)
    assert oldest.count == 8 and {s.customer for s in oldest.samples} == {f"customers/{i}" for i in ids[22:30]}
    unassigned = await segments.PreviewSegment(pb.PreviewSegmentRequest(
        rule=f'branch_id == "{branch_id}" && !has(cluster_id)'), metadata=MARKETER)
    assert unassigned.count == 2
    features = (await segments.ListFeatures(pb.ListFeaturesRequest(page_size=1000), metadata=MARKETER)).features
    assert "cluster_id" in {f.feature for f in features}


async def test_a_repeated_request_id_returns_the_first_run(segments, segment_service) -> None:
    branch_id = new_branch()
    await seed(segment_service, branch_id, three_groups())
    people = await population(segments, branch_id)
    request_id = str(uuid.uuid4())
    first = await start_clustering(segments, population_segment=people, cluster_count=3, request_id=request_id)
    before = await row_counts(segment_service, "clustering_run", "operation")
    second = await start_clustering(segments, population_segment=people, cluster_count=3, request_id=request_id)
    assert (second.clustering_run, second.operation.name) == (first.clustering_run, first.operation.name)
    assert await row_counts(segment_service, "clustering_run", "operation") == before
    done = await finished(segments, first.operation.name)
    assert done.state == SUCCEEDED
    run = (await segments.GetClusteringRun(pb.GetClusteringRunRequest(name=first.clustering_run),
                                           metadata=MARKETER)).clustering_run
    assert run.requested_cluster_count == 3 and run.cluster_count == 3 and run.random_seed > 0


async def test_fewer_customers_than_clusters_fails_the_operation_with_failed_precondition(
        segments, segment_service) -> None:
    branch_id = new_branch()
    await seed(segment_service, branch_id, [{"aum": 1_000 * i, "age_years": 30 + i} for i in range(3)])
    people = await population(segments, branch_id)
    started = await start_clustering(segments, population_segment=people, cluster_count=5)
    done = await finished(segments, started.operation.name)
    assert done.state == FAILED
    assert done.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "cannot form 5 clusters from 3 customers" in done.error.message
    run = (await segments.GetClusteringRun(pb.GetClusteringRunRequest(name=started.clustering_run),
                                           metadata=MARKETER)).clustering_run
    assert run.state == FAILED and run.cluster_count == 0
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.ListClusters(pb.ListClustersRequest(parent=run.name), metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    _, runtime = segment_service
    async with runtime.db.engine.connect() as connection:
        stored = await connection.scalar(sa.text(
            "SELECT (SELECT count(*) FROM cluster WHERE run_id = :r) + "
            "(SELECT count(*) FROM cluster_assignment WHERE run_id = :r)"),
            {"r": uuid.UUID(run.name.removeprefix("clusteringRuns/"))})
    assert stored == 0


@pytest.mark.parametrize(("fields", "field"), [
    ({"features": ["aum", "amu"]}, "features[1]"),
    ({"features": ["aum", "branch_id"]}, "features[1]"),
    ({"features": ["aum", "churn_probability"]}, "features[1]"),
    ({"features": ["aum", "cluster_id"]}, "features[1]"),
    ({"features": ["aum", "aum"]}, "features"),
    ({"features": []}, "features"),
    ({"display_name": ""}, "display_name"),
    ({"cluster_count": 1}, "cluster_count"),
    ({"cluster_count": 21}, "cluster_count"),
    ({"cluster_count": 3, "min_cluster_count": 2}, "min_cluster_count"),
    ({"min_cluster_count": 6, "max_cluster_count": 4}, "max_cluster_count"),
    ({"max_cluster_count": 30}, "max_cluster_count"),
    ({"random_seed": -1}, "random_seed"),
    ({"random_seed": 2**32}, "random_seed"),
    ({"missing_values": 9}, "missing_values"),
    ({"population_segment": "groups/x"}, "population_segment"),
    ({"request_id": "not-a-uuid"}, "request_id"),
])
async def test_a_bad_clustering_request_is_invalid_argument_naming_the_field_and_changes_nothing(
        segments, segment_service, fields, field) -> None:
    request = pb.StartClusteringRequest(display_name="Bad", features=["aum", "age"])
    for key, value in fields.items():
        if key == "features":
            del request.features[:]
            request.features.extend(value)
        else:
            setattr(request, key, value)
    before = await row_counts(segment_service, *RUN_TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.StartClustering(request, metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value), field_violations(error.value)
    assert await row_counts(segment_service, *RUN_TABLES) == before


async def test_an_unknown_population_or_run_is_not_found_and_a_marketer_cannot_start(segments,
                                                                                     segment_service) -> None:
    before = await row_counts(segment_service, *RUN_TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await start_clustering(segments, population_segment="segments/no-such-segment", request_id=str(uuid.uuid4()))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(missing.value).reason == "SEGMENT_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await segments.StartClustering(pb.StartClusteringRequest(display_name="x", features=["aum"]),
                                       metadata=MARKETER)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await row_counts(segment_service, *RUN_TABLES) == before
    unknown = f"clusteringRuns/{uuid.uuid4()}"
    for call in (segments.GetClusteringRun(pb.GetClusteringRunRequest(name=unknown), metadata=MARKETER),
                 segments.ListClusters(pb.ListClustersRequest(parent=unknown), metadata=MARKETER)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await segments.GetClusteringRun(pb.GetClusteringRunRequest(name="clusteringRuns/1"), metadata=MARKETER)
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in field_violations(malformed.value)
