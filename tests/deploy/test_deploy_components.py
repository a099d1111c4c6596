"""The kustomize Components of deploy/k8s/components: every combination renders on the base and
keeps the pod and settings rules; the release's version reaches every image tag and every
migration Job's name; the collector's pipelines scrub personal data before anything leaves,
derive RED metrics before sampling and keep every error trace; each service gets a
CloudNativePG cluster with object-store backups and a pooler.

Static checks need only PyYAML; the renders need `kubectl` (with its kustomize) and skip without it.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from crmkit import attributes

from .test_deploy_manifests import (
    BASE,
    COMPONENTS_DIR,
    KUSTOMIZE_COMPONENTS,
    Resource,
    component_of,
    component_resources,
    components,
    find,
    hardening_violations,
    pod_templates,
    settings_violations,
)

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: renders not checked")
SERVICES = [name for name, component in components().items() if component.is_service]


def render_with(tmp_path: Path, chosen: tuple[str, ...], version: str = "0.1.0") -> list[Resource]:
    """Render the base with the chosen components and a release, as an overlay would."""
    overlay = tmp_path / "overlay"
    overlay.mkdir(exist_ok=True)
    (overlay / "release.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "crm-release"}, "data": {"version": version}}))
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "crm-test",
        "resources": ["release.yaml", os.path.relpath(BASE, overlay)],
        "components": [os.path.relpath(COMPONENTS_DIR / name, overlay) for name in chosen]}))
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, f"base + {chosen}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


def combinations() -> list[tuple[str, ...]]:
    names = [p.name for p in KUSTOMIZE_COMPONENTS]
    return [c for size in range(len(names) + 1) for c in itertools.combinations(names, size)]


@needs_kubectl
@pytest.mark.parametrize("chosen", combinations(), ids=lambda c: "+".join(c) or "none")
def test_every_combination_of_components_renders_and_keeps_the_rules(chosen: tuple[str, ...], tmp_path: Path) -> None:
    rendered = render_with(tmp_path, chosen)
    assert not hardening_violations(rendered)
    assert not settings_violations(rendered)
    for name in chosen:
        for resource in component_resources(name):
            assert find(rendered, resource["kind"], resource["metadata"]["name"]), f"{name}: {resource['kind']} lost"
    kinds = {r["kind"] for r in rendered}
    assert ("NetworkPolicy" in kinds) is ("network-policies" in chosen or "otel-collector" in chosen
                                          or "cloudnative-pg" in chosen)


@needs_kubectl
def test_the_release_names_every_tag_and_migration_job(tmp_path: Path) -> None:
    rendered = render_with(tmp_path, ("image-tags",), version="7.3.1-rc.2")
    for workload, pod in pod_templates(rendered):
        if component_of(workload) not in components():
            continue
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert container["image"] == f"crm-{component_of(workload)}:7.3.1-rc.2", workload["metadata"]["name"]
        assert workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == "7.3.1-rc.2"
    jobs = sorted(r["metadata"]["name"] for r in rendered if r["kind"] == "Job")
    assert jobs == sorted(f"{s}-migrate-7.3.1-rc.2" for s in SERVICES)


# -- the OpenTelemetry Collector ----------------------------------------------------------------


def collector_config() -> dict[str, Any]:
    config_map = find(component_resources("otel-collector"), "ConfigMap", "otel-collector-config")
    assert config_map is not None
    document = yaml.safe_load(config_map["data"]["config.yaml"])
    assert isinstance(document, dict)
    return document


def test_collector_pipelines_name_only_defined_parts_and_limit_memory_first() -> None:
    config = collector_config()
    pipelines = config["service"]["pipelines"]
    connectors = set(config["connectors"])
    for name, pipeline in pipelines.items():
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter goes first"
        assert set(pipeline["processors"]) <= set(config["processors"]), name
        assert set(pipeline["receivers"]) <= set(config["receivers"]) | connectors, name
        assert set(pipeline["exporters"]) <= set(config["exporters"]) | connectors, name
    used = {part for p in pipelines.values() for key in ("receivers", "processors", "exporters") for part in p[key]}
    assert used >= set(config["receivers"]) | set(config["processors"]) | set(config["exporters"]) | connectors
    # A connector is an exporter of one pipeline and a receiver of another.
    for connector in connectors:
        assert any(connector in p["exporters"] for p in pipelines.values()), connector
        assert any(connector in p["receivers"] for p in pipelines.values()), connector


def test_personal_data_is_scrubbed_before_metrics_sampling_or_export() -> None:
    config = collector_config()
    pipelines = config["service"]["pipelines"]
    scrubbing = {"attributes/personal-data", "transform/personal-data"}
    for name, pipeline in pipelines.items():
        if "otlp" in pipeline["receivers"]:  # everything from the processes passes the scrubbers
            assert "attributes/personal-data" in pipeline["processors"], name
    traces_in = pipelines["traces/in"]
    assert scrubbing <= set(traces_in["processors"]) and "spanmetrics" in traces_in["exporters"]
    actions = config["processors"]["attributes/personal-data"]["actions"]
    assert all(a["action"] == "delete" for a in actions)
    deleted = {a["key"] for a in actions if "key" in a}
    patterns = [re.compile(a["pattern"]) for a in actions if "pattern" in a]

    def dropped(key: str) -> bool:
        return key in deleted or any(p.fullmatch(key) for p in patterns)

    # The kit's one attribute naming a person, and what HTTP, gRPC and database instrumentation
    # may record about a caller or a statement.
    for key in (attributes.RPC_PRINCIPAL, "enduser.id", "db.statement", "url.query", "client.address",
                "http.client_ip", "user_agent.original", "http.request.header.authorization",
                "rpc.grpc.request.metadata.authorization"):
        assert dropped(key), f"{key} would reach the backend"
    for key in (attributes.RPC_ROLES, attributes.OPERATION_KIND, "rpc.method", "http.route"):
        assert not dropped(key), f"{key} carries no personal data and is needed"
    statements = [s for group in config["processors"]["transform/personal-data"]["trace_statements"]
                  for s in group["statements"]]
    assert any('"url.full"' in s and "replace_pattern" in s for s in statements)
    assert any('"exception.message"' in s for s in statements)


def test_every_error_trace_is_kept_and_red_metrics_come_from_every_span() -> None:
    config = collector_config()
    pipelines = config["service"]["pipelines"]
    policies = config["processors"]["tail_sampling"]["policies"]
    assert any(p["type"] == "status_code" and p["status_code"]["status_codes"] == ["ERROR"] for p in policies)
    # Sampling happens only after the span metrics were taken from the full stream.
    sampled = [name for name, p in pipelines.items() if "tail_sampling" in p["processors"]]
    assert sampled == ["traces/out"] and pipelines["traces/out"]["receivers"] == ["forward"]
    assert "tail_sampling" not in pipelines["traces/in"]["processors"]
    dimensions = {d["name"] for d in config["connectors"]["spanmetrics"]["dimensions"]}
    assert {"rpc.method", "rpc.grpc.status_code", "http.route", "http.response.status_code"} <= dimensions
    assert config["connectors"]["spanmetrics"]["namespace"] == "crm"  # crm_calls_total, crm_duration_*
    assert "spanmetrics" in pipelines["metrics"]["receivers"]
    assert {"prometheus", "otlp/backend"} <= set(pipelines["metrics"]["exporters"])
    assert "otlp/backend" in pipelines["traces/out"]["exporters"]


def test_the_scrape_endpoint_and_backend_are_wired() -> None:
    config = collector_config()
    resources = component_resources("otel-collector")
    deployment = find(resources, "Deployment", "otel-collector")
    service = find(resources, "Service", "otel-collector")
    assert deployment is not None and service is not None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert config["exporters"]["prometheus"]["endpoint"] == f"0.0.0.0:{ports['metrics']}"
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == f"0.0.0.0:{ports['otlp-grpc']}"
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    backend = find(resources, "ConfigMap", "otel-collector-backend")
    assert backend is not None
    assert config["exporters"]["otlp/backend"]["endpoint"] == "${env:OTEL_BACKEND_ENDPOINT}"
    assert "OTEL_BACKEND_ENDPOINT" in backend["data"]
    assert {"configMapRef": {"name": "otel-collector-backend"}} in container["envFrom"]
    assert "@sha256:" in container["image"] or re.search(r":\d+\.\d+\.\d+$", container["image"]), "a pinned release"


# -- CloudNativePG ---------------------------------------------------------------------------------


def test_each_service_gets_a_cluster_with_object_store_backups_and_a_pooler() -> None:
    resources = component_resources("cloudnative-pg")
    for service in SERVICES:
        cluster = find(resources, "Cluster", f"{service}-db")
        assert cluster is not None, f"{service}: no Cluster"
        spec = cluster["spec"]
        assert spec["instances"] >= 3 and spec["bootstrap"]["initdb"]["database"] == f"crm_{service}"
        store = spec["backup"]["barmanObjectStore"]
        assert store["destinationPath"].endswith(f"/{service}"), "one backup path per database"
        assert store["wal"]["encryption"] and store["data"]["encryption"], "backups encrypted at rest"
        assert spec["inheritedMetadata"]["labels"]["app.kubernetes.io/part-of"] == "crm-platform"
        backups = [r for r in resources if r["kind"] == "ScheduledBackup"
                   and r["spec"]["cluster"]["name"] == f"{service}-db"]
        assert backups and backups[0]["spec"]["method"] == "barmanObjectStore"
        poolers = [r for r in resources if r["kind"] == "Pooler" and r["spec"]["cluster"]["name"] == f"{service}-db"]
        assert len(poolers) == 1 and poolers[0]["spec"]["type"] == "rw"
        # asyncpg's per-connection prepared statements need session pooling.
        assert poolers[0]["spec"]["pgbouncer"]["poolMode"] == "session"
        assert poolers[0]["metadata"]["name"] != cluster["metadata"]["name"]
