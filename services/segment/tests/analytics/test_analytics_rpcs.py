"""Clustering and cross-sell mining through a real in-process server on PostgreSQL.

Each test seeds its own customers into the read model under a fresh branch and makes them a
materialised segment, the run's population, so tests sharing the database never see each
other's customers. Runs go through the operation machinery into a spawned worker process.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from crm.common.v1 import operation_pb2
from crm.segment.v1 import analytics_pb2, segment_pb2
from crm.segment.v1 import segment_service_pb2 as pb
from crm_segment.clusters.model import MissingValues
from crm_segment.crosssell.model import RuleOrder
from crm_segment.features.tables import customer_feature
from crmkit.auth import Role
from crmkit.testing import assert_enum_mirrors, bearer, error_info, eventually, field_violations, row_counts

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
    return [*rows, {"aum": 50_000, "age_years": None}, {"aum": 70_000, "age_years": None}]


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
    listed = await segments.ListOperations(pb.ListOperationsRequest(kind="segment.clustering", page_size=1000),
                                           metadata=ANALYST)
    assert first.operation.name in {op.name for op in listed.operations}


async def test_imputing_medians_clusters_the_customers_a_drop_would_leave_out(segments, segment_service) -> None:
    branch_id = new_branch()
    await seed(segment_service, branch_id, three_groups())
    people = await population(segments, branch_id)
    started = await start_clustering(segments, population_segment=people, cluster_count=3,
                                     missing_values=analytics_pb2.CLUSTERING_MISSING_VALUES_IMPUTE_MEDIAN)
    assert (await finished(segments, started.operation.name)).state == SUCCEEDED
    run = (await segments.GetClusteringRun(pb.GetClusteringRunRequest(name=started.clustering_run),
                                           metadata=MARKETER)).clustering_run
    assert (run.customer_count, run.excluded_count) == (32, 0)
    assert run.missing_values == analytics_pb2.CLUSTERING_MISSING_VALUES_IMPUTE_MEDIAN


async def test_a_cancelled_run_stores_no_clusters(segments, segment_service) -> None:
    branch_id = new_branch()
    await seed(segment_service, branch_id, three_groups())
    people = await population(segments, branch_id)
    started = await start_clustering(segments, population_segment=people, cluster_count=3)
    await segments.CancelOperation(pb.CancelOperationRequest(name=started.operation.name), metadata=ANALYST)
    done = await finished(segments, started.operation.name)
    assert done.state == operation_pb2.OPERATION_STATE_CANCELLED
    run = (await segments.GetClusteringRun(pb.GetClusteringRunRequest(name=started.clustering_run),
                                           metadata=MARKETER)).clustering_run
    assert run.state == operation_pb2.OPERATION_STATE_CANCELLED and run.cluster_count == 0
    _, runtime = segment_service
    async with runtime.db.engine.connect() as connection:
        stored = await connection.scalar(sa.text("SELECT count(*) FROM cluster_assignment WHERE run_id = :r"),
                                         {"r": uuid.UUID(run.name.removeprefix("clusteringRuns/"))})
    assert stored == 0


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
    ({"features": ["aum", "latest_nps_score"]}, "features[1]"),
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


# --- cross-sell -------------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[4] / "docs" / "segment-analytics.md"


def baskets() -> list[list[str]]:
    """46 customers: term deposits go with funds, payroll and a credit card with wealth, savings
    alone, four holding nothing. The 5 holding a deposit but no fund are customers c010..c014."""
    return ([["TERM_DEPOSIT", "FUND"]] * 10 + [["TERM_DEPOSIT"]] * 5 + [["FUND"]] * 5 + [["SAVINGS"]] * 14
            + [["PAYROLL", "CREDIT_CARD", "WEALTH"]] * 4 + [["PAYROLL", "CREDIT_CARD"]] * 2 + [["WEALTH"]] * 2
            + [[]] * 4)


async def mine(segments: Any, people: str, **fields: Any) -> pb.MineAssociationRulesResponse:
    request = pb.MineAssociationRulesRequest(population_segment=people, **fields)
    return await segments.MineAssociationRules(request, metadata=ANALYST)


async def test_mining_finds_the_rules_with_their_measures_and_each_targets_a_compiling_segment(
        segments, segment_service) -> None:
    branch_id = new_branch()
    ids = await seed(segment_service, branch_id, [{"product_categories": b} for b in baskets()])
    people = await population(segments, branch_id)
    started = await mine(segments, people, min_support=0.05, min_confidence=0.5, min_lift=1.2,
                         request_id=str(uuid.uuid4()))
    done = await finished(segments, started.operation.name)
    assert done.state == SUCCEEDED, done.error
    response = analytics_pb2.AssociationRun()
    assert done.response.Unpack(response) and response.name == started.association_run
    assert (response.customer_count, response.min_support, response.max_rule_size, response.max_rules) == \
        (46, 0.05, 3, 100)

    listed = await segments.ListAssociationRules(pb.ListAssociationRulesRequest(parent=started.association_run),
                                                 metadata=MARKETER)
    assert listed.association_run.rule_count == len(listed.rules) > 0
    by_items = {(tuple(r.antecedent_items), r.consequent_items[0]): r for r in listed.rules}
    deposit_fund = by_items[(("TERM_DEPOSIT",), "FUND")]
    # 10 of 46 hold both; 10 of the 15 deposit holders hold a fund; funds are held by 15 of 46.
    assert deposit_fund.support == pytest.approx(10 / 46)
    assert deposit_fund.confidence == pytest.approx(10 / 15)
    assert deposit_fund.lift == pytest.approx((10 / 15) / (15 / 46))
    assert (deposit_fund.customer_count, deposit_fund.antecedent_customer_count,
            deposit_fund.consequent_customer_count) == (10, 15, 15)
    assert (("CREDIT_CARD", "PAYROLL"), "WEALTH") in by_items
    assert all(r.lift >= 1.2 and r.confidence >= 0.5 and r.support >= 0.05 for r in listed.rules)
    assert [r.lift for r in listed.rules] == sorted((r.lift for r in listed.rules), reverse=True)

    # The target rule is a segment rule: those holding a deposit but no fund.
    assert deposit_fund.target_rule == '"TERM_DEPOSIT" in product_categories && !("FUND" in product_categories)'
    prospects = await segments.PreviewSegment(pb.PreviewSegmentRequest(
        rule=f'branch_id == "{branch_id}" && {deposit_fund.target_rule}', sample_size=50), metadata=MARKETER)
    assert {s.customer for s in prospects.samples} == {f"customers/{i}" for i in ids[10:15]}

    # Filters: what to offer someone holding only a term deposit; rules suggesting wealth.
    offer = await segments.ListAssociationRules(pb.ListAssociationRulesRequest(
        parent=started.association_run, held_items=["TERM_DEPOSIT"]), metadata=MARKETER)
    assert [(tuple(r.antecedent_items), r.consequent_items[0]) for r in offer.rules] == [(("TERM_DEPOSIT",), "FUND")]
    wealth = await segments.ListAssociationRules(pb.ListAssociationRulesRequest(
        parent=started.association_run, consequent_item="WEALTH", order_by=pb.ASSOCIATION_RULE_ORDER_CONFIDENCE),
        metadata=MARKETER)
    assert wealth.rules and {r.consequent_items[0] for r in wealth.rules} == {"WEALTH"}
    assert [r.confidence for r in wealth.rules] == sorted((r.confidence for r in wealth.rules), reverse=True)

    # Paging one rule at a time walks the same rules in the same order.
    walked, token = [], ""
    while True:
        page = await segments.ListAssociationRules(pb.ListAssociationRulesRequest(
            parent=started.association_run, page_size=1, page_token=token), metadata=MARKETER)
        walked += [r.name for r in page.rules]
        token = page.next_page_token
        if not token:
            break
    assert walked == [r.name for r in listed.rules]

    # The alias names the newest succeeded run: this one.
    latest = await segments.ListAssociationRules(pb.ListAssociationRulesRequest(parent="associationRuns/latest"),
                                                 metadata=MARKETER)
    assert latest.association_run.name == started.association_run


async def test_the_documented_cross_sell_segment_compiles_and_selects_the_prospects(segments,
                                                                                    segment_service) -> None:
    text = DOC.read_text()
    rule = text.split("```cel\n", 1)[1].split("```", 1)[0].strip()
    checked = await segments.ValidateSegmentRule(pb.ValidateSegmentRuleRequest(rule=rule), metadata=MARKETER)
    assert checked.valid, checked.issues
    assert set(checked.referenced_features) == {"product_categories"}
    branch_id = new_branch()
    ids = await seed(segment_service, branch_id, [{"product_categories": b} for b in baskets()])
    prospects = await segments.PreviewSegment(pb.PreviewSegmentRequest(
        rule=f'branch_id == "{branch_id}" && ({rule})', sample_size=50), metadata=MARKETER)
    assert {s.customer for s in prospects.samples} == {f"customers/{i}" for i in ids[10:15]}


@pytest.mark.parametrize(("fields", "field"), [
    ({"min_support": 1.5}, "min_support"),
    ({"min_support": -0.1}, "min_support"),
    ({"min_confidence": 1.01}, "min_confidence"),
    ({"min_lift": -1.0}, "min_lift"),
    ({"min_lift": math.inf}, "min_lift"),
    ({"max_rule_size": 5}, "max_rule_size"),
    ({"max_rule_size": 1}, "max_rule_size"),
    ({"max_rules": 1001}, "max_rules"),
    ({"population_segment": "segments/"}, "population_segment"),
    ({"request_id": "nope"}, "request_id"),
])
async def test_a_bad_mining_request_is_invalid_argument_naming_the_field_and_changes_nothing(
        segments, segment_service, fields, field) -> None:
    before = await row_counts(segment_service, *RUN_TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.MineAssociationRules(pb.MineAssociationRulesRequest(**fields), metadata=ANALYST)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value), field_violations(error.value)
    assert await row_counts(segment_service, *RUN_TABLES) == before


@pytest.mark.parametrize(("fields", "field"), [
    ({"min_confidence": 2.0}, "min_confidence"),
    ({"min_lift": -0.5}, "min_lift"),
    ({"order_by": 9}, "order_by"),
    ({"held_items": ["X"] * 101}, "held_items"),
    ({"held_items": [""]}, "held_items"),
    ({"parent": "associationRuns/42"}, "parent"),
    ({"parent": ""}, "parent"),
    ({"page_size": -1}, "page_size"),
])
async def test_a_bad_rule_listing_is_invalid_argument_naming_the_field(segments, fields, field) -> None:
    request = pb.ListAssociationRulesRequest(parent="associationRuns/latest")
    for key, value in fields.items():
        if key == "held_items":
            request.held_items.extend(value)
        else:
            setattr(request, key, value)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.ListAssociationRules(request, metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(error.value), field_violations(error.value)


async def test_mining_an_unknown_population_or_listing_an_unknown_run_is_not_found(segments,
                                                                                   segment_service) -> None:
    before = await row_counts(segment_service, *RUN_TABLES)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await mine(segments, "segments/no-such-segment", request_id=str(uuid.uuid4()))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await segments.MineAssociationRules(pb.MineAssociationRulesRequest(), metadata=MARKETER)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await row_counts(segment_service, *RUN_TABLES) == before
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await segments.ListAssociationRules(pb.ListAssociationRulesRequest(
            parent=f"associationRuns/{uuid.uuid4()}"), metadata=MARKETER)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_listing_the_rules_of_a_run_that_did_not_succeed_is_failed_precondition(segments,
                                                                                      segment_service) -> None:
    _, runtime = segment_service
    run_id, operation_id = uuid.uuid4(), uuid.uuid4()
    async with runtime.db.engine.begin() as connection:
        await connection.execute(sa.text(
            "INSERT INTO operation (operation_id, kind, state, creator, metadata) "
            "VALUES (:op, 'segment.association', 4, 'analyst-1', ''::bytea)"), {"op": operation_id})
        await connection.execute(sa.text(
            "INSERT INTO association_run (run_id, operation_id, min_support, min_confidence, min_lift, "
            "max_rule_size, max_rules, creator) VALUES (:run, :op, 0.01, 0.1, 1.0, 3, 100, 'analyst-1')"),
            {"run": run_id, "op": operation_id})
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await segments.ListAssociationRules(pb.ListAssociationRulesRequest(parent=f"associationRuns/{run_id}"),
                                            metadata=MARKETER)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(error.value).reason == "RUN_NOT_SUCCEEDED"


async def test_analytics_jobs_beyond_the_limit_are_resource_exhausted(segments, segment_service) -> None:
    _, runtime = segment_service
    async with runtime.db.engine.begin() as connection:
        blockers = [uuid.uuid4() for _ in range(2)]
        for blocker in blockers:
            await connection.execute(sa.text(
                "INSERT INTO operation (operation_id, kind, state, creator, metadata) "
                "VALUES (:id, 'segment.clustering', 2, 'blocker', ''::bytea)"), {"id": blocker})
    try:
        before = await row_counts(segment_service, *RUN_TABLES)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await mine(segments, "")
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await row_counts(segment_service, *RUN_TABLES) == before
    finally:
        async with runtime.db.engine.begin() as connection:
            await connection.execute(sa.text("DELETE FROM operation WHERE operation_id = ANY(:ids)"),
                                     {"ids": blockers})


@pytest.mark.parametrize(("domain", "proto", "prefix"), [
    (MissingValues, analytics_pb2.ClusteringMissingValues, "CLUSTERING_MISSING_VALUES_"),
    (RuleOrder, pb.AssociationRuleOrder, "ASSOCIATION_RULE_ORDER_"),
])
def test_analytics_enums_mirror_the_contract(domain, proto, prefix) -> None:
    assert_enum_mirrors(domain, proto, prefix=prefix)
