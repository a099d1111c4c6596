"""The Kubernetes manifests (deploy/k8s) against the code they deploy, so that either drifting
from the other fails here: components, ports, health names, settings variables, secrets, pod
hardening, drain time, network paths, and the kustomize trees themselves.

Facts come from the code (settings classes and their env names, default ports, health service
names, which service imports whose stubs), never from a copy in this file. With `kubectl` on the
PATH each overlay is also rendered and the rendered result checked.
"""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from crmkit.server import LIVENESS

REPOSITORY = Path(__file__).resolve().parents[2]
K8S = REPOSITORY / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
COMPONENTS_DIR = K8S / "components"
KUSTOMIZE_COMPONENTS = sorted(p for p in COMPONENTS_DIR.iterdir() if (p / "kustomization.yaml").exists())
GATEWAY = "gateway"

Resource = dict[str, Any]


@dataclass(frozen=True)
class Component:
    """A process of the platform as the code defines it."""

    name: str
    settings: type[BaseSettings]
    health_name: str | None  # the gRPC health service name; None for the HTTP gateway

    @property
    def port(self) -> int:
        default = self.settings.model_fields["port"].default
        assert isinstance(default, int)
        return default

    @property
    def is_service(self) -> bool:
        return self.health_name is not None


def service_names() -> list[str]:
    return sorted(p.name for p in (REPOSITORY / "services").iterdir() if (p / "pyproject.toml").exists())


@cache
def components() -> dict[str, Component]:
    found = {}
    for name in service_names():
        spec = importlib.import_module(f"crm_{name}.app").SPEC
        health = importlib.import_module(f"crm_{name}.api.access").SERVICE.full_name
        found[name] = Component(name, spec.settings_type, health)
    from crm_gateway.settings import GatewaySettings

    found[GATEWAY] = Component(GATEWAY, GatewaySettings, None)
    return found


def variable_names(settings: type[BaseSettings]) -> dict[str, str]:
    """Field -> the environment variable pydantic-settings reads it from (alias, or prefix + name)."""
    prefix = settings.model_config.get("env_prefix", "")
    names = {}
    for field, info in settings.model_fields.items():
        alias = info.validation_alias or info.alias
        if alias is None:
            names[field] = f"{prefix}{field}".upper()
        elif isinstance(alias, str):
            names[field] = alias.upper()
        else:  # AliasChoices / AliasPath: teach this function before relying on it
            raise TypeError(f"{settings.__name__}.{field}: alias {alias!r} is not a plain variable name")
    return names


def secret_variables(settings: type[BaseSettings]) -> set[str]:
    """Variables of secret settings: SecretStr fields, and database URLs (they carry a password)."""
    names = variable_names(settings)
    return {names[field] for field, info in settings.model_fields.items()
            if _holds_secret(info.annotation) or field.endswith("database_url")}


def _holds_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_holds_secret(arg) for arg in typing.get_args(annotation))
    return False


def required_variables(settings: type[BaseSettings]) -> set[str]:
    names = variable_names(settings)
    return {names[field] for field, info in settings.model_fields.items() if info.is_required()}


def code_peers(service: str) -> set[str]:
    """Services whose gRPC stubs a service's own code imports: whom it calls."""
    peers = set()
    for source in (REPOSITORY / "services" / service / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("crm."):
                parts = node.module.split(".")
                imported = [parts[-1]] if len(parts) > 3 else [alias.name for alias in node.names]
                if len(parts) >= 3 and parts[2] == "v1" and any(n.endswith("_pb2_grpc") for n in imported):
                    peers.add(parts[1])
    return peers - {service}


# -- kustomize trees ---------------------------------------------------------------------------


def load(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization(directory: Path) -> dict[str, Any]:
    document = load(directory / "kustomization.yaml")[0]
    assert isinstance(document, dict)
    return document


def base_resources() -> list[Resource]:
    return [doc for entry in kustomization(BASE)["resources"] for doc in load(BASE / entry)]


def component_resources(name: str) -> list[Resource]:
    """The resources a kustomize Component of deploy/k8s/components adds (its patches aside)."""
    folder = COMPONENTS_DIR / name
    return [doc for entry in kustomization(folder).get("resources", []) for doc in load(folder / entry)]


def migration_job(resources: list[Resource], service: str) -> Resource | None:
    """A service's migration Job: named `<service>-migrate-<release>` (components/image-tags)."""
    jobs = [r for r in resources if r["kind"] == "Job" and component_of(r) == service
            and r["metadata"]["labels"].get("app.kubernetes.io/component") == "migration"]
    assert len(jobs) <= 1, f"{service}: several migration Jobs"
    return jobs[0] if jobs else None


def find(resources: list[Resource], kind: str, name: str) -> Resource | None:
    return next((r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name), None)


def pod_templates(resources: list[Resource]) -> Iterator[tuple[Resource, dict[str, Any]]]:
    """(workload, pod spec) for every Deployment and Job."""
    for resource in resources:
        if resource["kind"] in {"Deployment", "Job"}:
            yield resource, resource["spec"]["template"]["spec"]


def component_of(resource: Resource) -> str:
    labels = resource["metadata"].get("labels", {})
    return str(labels["app.kubernetes.io/name"])


def config_maps(resources: list[Resource]) -> dict[str, dict[str, str]]:
    return {r["metadata"]["name"]: r.get("data", {}) for r in resources if r["kind"] == "ConfigMap"}


def container_environment(container: dict[str, Any], resources: list[Resource]) -> dict[str, Any]:
    """Variable -> its `env` entry, or the ConfigMap value it gets through `envFrom`."""
    environment: dict[str, Any] = {}
    maps = config_maps(resources)
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"{container['name']}: envFrom only from ConfigMaps, got {source}"
        environment.update(maps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        environment[entry["name"]] = entry
    return environment


# -- tests ------------------------------------------------------------------------------------------

KUBECTL = shutil.which("kubectl")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
PART_OF = {"app.kubernetes.io/part-of": "crm-platform"}
POSTGRESQL_PORT = 5432
SCRATCH = "/tmp"  # noqa: S108 - the pods' writable scratch, not a file this test writes


def main_container(pod: dict[str, Any], component: str) -> dict[str, Any]:
    containers = {c["name"]: c for c in pod["containers"]}
    return containers.get(component) or containers["migrate"]


def literal(environment: dict[str, Any], variable: str) -> str | None:
    """The plain value a variable gets (ConfigMap or `value`), None when unset or from a Secret."""
    entry = environment.get(variable)
    if isinstance(entry, dict):
        return entry.get("value")
    return entry


def setting(component: Component, field: str, environment: dict[str, Any]) -> str:
    """What the process will read for `field`: the manifests' value, or the class's default."""
    value = literal(environment, variable_names(component.settings)[field])
    return value if value is not None else str(component.settings.model_fields[field].default)


def hardening_violations(resources: list[Resource]) -> list[str]:
    """Every breach of the pod rules: non-root, read-only root, no privilege, seccomp, /tmp, limits."""
    problems = []
    for workload, pod in pod_templates(resources):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod_security = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken must be false")
        problems += [f"{where}: {flag} must be off" for flag in ("hostNetwork", "hostPID", "hostIPC") if pod.get(flag)]
        scratch = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            name = f"{where}/{container['name']}"
            security = container.get("securityContext", {})
            effective = {**pod_security, **security}  # a container's own setting wins
            if effective.get("runAsNonRoot") is not True:
                problems.append(f"{name}: runAsNonRoot must be true")
            if effective.get("runAsUser") in (None, 0):
                problems.append(f"{name}: runAsUser must be a non-zero number")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: readOnlyRootFilesystem must be true")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation must be false")
            if security.get("privileged"):
                problems.append(f"{name}: must not be privileged")
            capabilities = security.get("capabilities", {})
            if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
                problems.append(f"{name}: capabilities must drop ALL and add none")
            if (effective.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                problems.append(f"{name}: seccompProfile must be RuntimeDefault")
            mounts = {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}
            if mounts.get(SCRATCH) not in scratch:
                problems.append(f"{name}: /tmp must be an emptyDir (the root filesystem is read-only)")
            resources_ = container.get("resources", {})
            problems += [f"{name}: resources.{part}.{kind} is missing"
                         for part in ("requests", "limits") for kind in ("cpu", "memory")
                         if kind not in resources_.get(part, {})]
    return problems


def settings_violations(resources: list[Resource]) -> list[str]:
    """CRM_* variables no settings class reads, required ones missing, secrets not from Secrets."""
    problems = []
    for workload, pod in pod_templates(resources):
        if component_of(workload) not in components():
            continue  # not a process of ours (the OpenTelemetry Collector)
        component = components()[component_of(workload)]
        known = set(variable_names(component.settings).values())
        for container in pod["containers"]:
            name = f"{workload['kind']}/{workload['metadata']['name']}/{container['name']}"
            environment = container_environment(container, resources)
            problems += [f"{name}: {v} is not a field of {component.settings.__name__}"
                         for v in sorted(environment) if v.startswith("CRM_") and v not in known]
            problems += [f"{name}: required {v} is not set"
                         for v in sorted(required_variables(component.settings) - set(environment))]
            for variable in sorted(secret_variables(component.settings)):
                entry = environment.get(variable)
                reference = entry.get("valueFrom", {}).get("secretKeyRef", {}) if isinstance(entry, dict) else {}
                if not (reference.get("name") and reference.get("key")) or "value" in (entry or {}):
                    problems.append(f"{name}: secret {variable} must come from a secretKeyRef, got {entry!r}")
    return problems


def test_every_component_has_its_resources() -> None:
    resources = base_resources()
    for name, component in components().items():
        kinds = ["ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"]
        missing = [kind for kind in kinds if find(resources, kind, name) is None]
        if component.is_service and migration_job(resources, name) is None:
            missing.append("Job")
        if find(component_resources("network-policies"), "NetworkPolicy", name) is None:
            missing.append("NetworkPolicy (components/network-policies)")
        assert not missing, f"{name}: no {', '.join(missing)} in deploy/k8s/base"
        headless = find(resources, "Service", name)["spec"].get("clusterIP") == "None"  # type: ignore[index]
        assert headless is component.is_service, f"{name}: services are headless, the gateway's is ClusterIP"
    deployed = {component_of(workload) for workload, _ in pod_templates(resources)}
    assert deployed == set(components()), "manifests deploy exactly the components the code has"


def test_container_and_probe_ports_are_the_settings_default_ports() -> None:
    resources = base_resources()
    for name, component in components().items():
        deployment = find(resources, "Deployment", name)
        assert deployment is not None
        container = main_container(deployment["spec"]["template"]["spec"], name)
        environment = container_environment(container, resources)
        assert [p["containerPort"] for p in container["ports"]] == [component.port], name
        assert setting(component, "port", environment) == str(component.port), f"{name}: port configured otherwise"
        for kind in PROBES:
            probe = container[kind]
            assert (probe.get("grpc") or probe["httpGet"])["port"] == component.port, f"{name}: {kind} port"
        service = find(resources, "Service", name)
        assert service is not None
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            (component.port, container["ports"][0]["name"])], f"{name}: Service port"


def test_grpc_probes_ask_for_the_service_health_name_and_liveness_for_the_process() -> None:
    resources = base_resources()
    for name, component in components().items():
        if not component.is_service:
            continue
        container = main_container(find(resources, "Deployment", name)["spec"]["template"]["spec"], name)  # type: ignore[index]
        for kind in ("startupProbe", "readinessProbe"):
            assert container[kind]["grpc"]["service"] == component.health_name, f"{name}: {kind}"
        # Liveness must not follow the database (crmkit.server.LIVENESS), or an outage restarts the fleet.
        assert container["livenessProbe"]["grpc"]["service"] == LIVENESS, f"{name}: livenessProbe"


def test_gateway_targets_each_service_through_its_headless_service() -> None:
    resources = base_resources()
    gateway = components()[GATEWAY]
    container = main_container(find(resources, "Deployment", GATEWAY)["spec"]["template"]["spec"], GATEWAY)  # type: ignore[index]
    environment = container_environment(container, resources)
    targets = [field for field in gateway.settings.model_fields if field.endswith("_target")]
    assert targets, "GatewaySettings has no peer targets: this test no longer checks anything"
    for field in targets:
        peer = components()[field.removesuffix("_target")]
        # The default (127.0.0.1) is the laptop's; in a pod it must name the peer's Service.
        assert literal(environment, variable_names(gateway.settings)[field]) == f"dns:///{peer.name}:{peer.port}"


def test_crm_variables_are_settings_fields_and_secrets_come_from_secrets() -> None:
    assert not settings_violations(base_resources())


def test_no_manifest_holds_a_secret() -> None:
    secret_variables_ = set().union(*(secret_variables(c.settings) for c in components().values()))
    for path in K8S.rglob("*.yaml"):
        for document in load(path):
            if not isinstance(document, dict):
                continue  # a JSON patch
            assert document.get("kind") != "Secret", f"{path}: Secrets are created by the operator, never committed"
            if document.get("kind") == "ConfigMap":
                leaked = secret_variables_ & set(document.get("data", {}))
                assert not leaked, f"{path}: {sorted(leaked)} belong in a Secret"


def test_every_pod_is_hardened() -> None:
    assert not hardening_violations(base_resources())


def test_service_accounts_carry_no_token() -> None:
    resources = base_resources()
    for workload, pod in pod_templates(resources):
        account = find(resources, "ServiceAccount", pod["serviceAccountName"])
        assert account is not None, f"{workload['metadata']['name']}: no ServiceAccount {pod['serviceAccountName']}"
        assert account["automountServiceAccountToken"] is False
        assert component_of(account) == component_of(workload)


def test_termination_grace_outlasts_the_drain() -> None:
    """The server drains in-flight calls for the grace, then background work (the operation runner)
    gets as long again before the engine closes: the pod must not be killed before that."""
    resources = base_resources()
    for name, component in components().items():
        pod = find(resources, "Deployment", name)["spec"]["template"]["spec"]  # type: ignore[index]
        environment = container_environment(main_container(pod, name), resources)
        grace = float(setting(component, "shutdown_grace_seconds", environment))
        drain = float(setting(component, "shutdown_drain_seconds", environment))
        assert pod["terminationGracePeriodSeconds"] >= drain + 2 * grace + 5, name
        assert not any("preStop" in c.get("lifecycle", {}) for c in pod["containers"]), f"{name}: no preStop hook"


def test_migration_job_runs_migrate_with_the_servers_image_and_settings() -> None:
    resources = base_resources()
    for name, component in components().items():
        if not component.is_service:
            continue
        server = main_container(find(resources, "Deployment", name)["spec"]["template"]["spec"], name)  # type: ignore[index]
        job_pod = migration_job(resources, name)["spec"]["template"]["spec"]  # type: ignore[index]
        (migrate,) = job_pod["containers"]
        assert server["command"] == ["python", "-m", f"crm_{name}", "serve"]
        assert migrate["command"] == ["python", "-m", f"crm_{name}", "migrate"]
        assert migrate["image"] == server["image"]
        # The migration builds the same settings class, so it needs the same variables.
        assert (migrate.get("envFrom"), migrate.get("env")) == (server.get("envFrom"), server.get("env"))
        assert job_pod["restartPolicy"] == "Never"


def test_new_pods_wait_for_their_schema_with_the_jobs_image_and_settings() -> None:
    """The Deployment rolls only once the release's migration Job has run: each service pod's init
    container waits for the schema (`wait-migrated`), built exactly like the Job's runner."""
    resources = base_resources()
    for name, component in components().items():
        pod = find(resources, "Deployment", name)["spec"]["template"]["spec"]  # type: ignore[index]
        if not component.is_service:
            assert not pod.get("initContainers"), "the gateway has no schema"
            continue
        (migrate,) = migration_job(resources, name)["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
        (wait,) = pod["initContainers"]
        assert wait["command"] == ["python", "-m", f"crm_{name}", "wait-migrated"]
        assert wait["image"] == migrate["image"] == main_container(pod, name)["image"]
        assert (wait.get("envFrom"), wait.get("env")) == (migrate.get("envFrom"), migrate.get("env"))


def test_service_selectors_pick_only_the_serving_pods() -> None:
    resources = base_resources()
    for name in components():
        deployment = find(resources, "Deployment", name)
        selector = deployment["spec"]["selector"]["matchLabels"]  # type: ignore[index]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()  # type: ignore[index]
        assert find(resources, "Service", name)["spec"]["selector"] == selector  # type: ignore[index]
        assert find(resources, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"] == selector  # type: ignore[index]
        autoscaler = find(resources, "HorizontalPodAutoscaler", name)["spec"]  # type: ignore[index]
        assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert [m["resource"]["name"] for m in autoscaler["metrics"]] == ["cpu"]
        job = migration_job(resources, name)
        if job is not None:  # a migration pod answering DNS for the Service would take calls
            assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()


def test_profile_scratch_holds_the_largest_upload() -> None:
    """Bulk imports copy the uploaded file to /tmp; an emptyDir too small fails big imports."""
    resources = base_resources()
    profile = components()["profile"]
    pod = find(resources, "Deployment", "profile")["spec"]["template"]["spec"]  # type: ignore[index]
    largest = int(setting(profile, "import_max_upload_bytes", container_environment(
        main_container(pod, "profile"), resources)))
    (tmp,) = [v for v in pod["volumes"] if v["name"] == "tmp"]
    assert _bytes(tmp["emptyDir"]["sizeLimit"]) > largest


def test_risk_reads_its_training_snapshots_from_a_mounted_volume() -> None:
    """TrainChurnModel refuses snapshot training without CRM_RISK_TRAINING_DIR, and a read-only root
    filesystem holds no such folder: the setting must name a mounted volume, the same in every pod."""
    resources = base_resources()
    risk = components()["risk"]
    pod = find(resources, "Deployment", "risk")["spec"]["template"]["spec"]  # type: ignore[index]
    container = main_container(pod, "risk")
    directory = setting(risk, "training_dir", container_environment(container, resources))
    assert directory, "CRM_RISK_TRAINING_DIR is unset: snapshot training would be refused"
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = find(resources, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim is not None and "ReadWriteMany" in claim["spec"]["accessModes"], "shared by every replica"
    assert mount.get("readOnly") is True, "the service only reads snapshots"


def _bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", quantity)
    assert match, f"unsupported quantity {quantity}"
    return int(match[1]) * 1024 ** ("", "Ki", "Mi", "Gi", "Ti").index(match[2] or "")


def _selected_names(peers: list[dict[str, Any]]) -> set[str]:
    return {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in peers if "podSelector" in p}


def test_network_policies_open_only_the_paths_the_code_takes() -> None:
    resources = base_resources() + component_resources("network-policies")
    policies = {r["metadata"]["name"]: r["spec"] for r in resources if r["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    services = [c for c in components().values() if c.is_service]
    gateway = components()[GATEWAY]
    calls = {s.name: code_peers(s.name) for s in services}
    calls[GATEWAY] = {f.removesuffix("_target") for f in gateway.settings.model_fields if f.endswith("_target")}
    for name, component in components().items():
        policy = policies[name]
        assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        callers = {caller for caller, callees in calls.items() if name in callees}
        ingress_from = {n for rule in policy["ingress"] for n in _selected_names(rule.get("from", []))}
        if component.is_service:
            assert ingress_from == callers, f"{name}: ingress from {ingress_from}, the code calls it from {callers}"
        else:
            assert all("from" not in rule for rule in policy["ingress"]), "the gateway takes traffic from anywhere"
        egress = {(n, port["port"]) for rule in policy["egress"] for n in _selected_names(rule.get("to", []))
                  for port in rule["ports"]}
        expected = {(peer, components()[peer].port) for peer in calls[name]}
        assert egress == expected, f"{name}: egress to {egress}, the code calls {expected}"
        database = any(p["port"] == POSTGRESQL_PORT for rule in policy["egress"] for p in rule["ports"])
        assert database is component.is_service, f"{name}: PostgreSQL egress only for services"
    platform = policies["platform-egress"]
    assert platform["podSelector"]["matchLabels"] == PART_OF
    ports = {(p["port"], p["protocol"]) for rule in platform["egress"] for p in rule["ports"]}
    endpoint = config_maps(resources)["crm-config"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert ports == {(53, "UDP"), (53, "TCP"), (int(endpoint.rsplit(":", 1)[1]), "TCP")}
    for workload, _ in pod_templates(resources):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert PART_OF.items() <= labels.items(), f"{workload['metadata']['name']}: platform-egress misses it"


def _trees() -> list[Path]:
    return [BASE, *OVERLAYS, *KUSTOMIZE_COMPONENTS]


@pytest.mark.parametrize("tree", _trees(), ids=lambda p: str(p.relative_to(K8S)))
def test_kustomization_lists_every_file_and_only_existing_ones(tree: Path) -> None:
    spec = kustomization(tree)
    listed = set()
    for entry in [*spec.get("resources", []), *spec.get("components", [])]:
        target = (tree / entry).resolve()
        if target.is_dir():
            assert (target / "kustomization.yaml").exists(), f"{tree}: {entry} is not a kustomization"
        else:
            listed.add(target)
    listed |= {(tree / patch["path"]).resolve() for patch in spec.get("patches", []) if "path" in patch}
    present = {p.resolve() for p in tree.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert not listed - present, f"{tree}: listed but missing: {sorted(map(str, listed - present))}"
    assert not present - listed, f"{tree}: orphan files: {sorted(map(str, present - listed))}"


def _container_names(resource: Resource) -> set[str]:
    pod = resource.get("spec", {}).get("template", {}).get("spec", {})
    return {container["name"] for container in pod.get("containers", [])}


def _json_pointer_exists(document: Any, pointer: str) -> bool:
    for part in pointer.strip("/").split("/"):
        if isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        elif isinstance(document, dict) and part in document:
            document = document[part]
        else:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlay_patches_only_what_the_base_has(overlay: Path) -> None:
    resources = base_resources()
    spec = kustomization(overlay)
    for replicas in spec.get("replicas", []):
        assert find(resources, "Deployment", replicas["name"]), f"{overlay.name}: no Deployment {replicas['name']}"
    for image in spec.get("images", []):
        assert any(c["image"].split(":")[0] == image["name"] for _, pod in pod_templates(resources)
                   for c in pod["containers"]), f"{overlay.name}: no container uses image {image['name']}"
    for patch in spec.get("patches", []):
        documents = load(overlay / patch["path"]) if "path" in patch else [yaml.safe_load(patch["patch"])]
        target = patch.get("target")
        if target is None:  # strategic merge: it names the one resource it changes
            (document,) = documents
            patched = find(resources, document["kind"], document["metadata"]["name"])
            assert patched is not None, f"{overlay.name}: patch of missing {document['kind']}/{document['metadata']}"
            new, old = _container_names(document), _container_names(patched)
            assert new <= old, f"{overlay.name}: a patch would add containers {sorted(new - old)}"
            continue
        matches = [r for r in resources if r["kind"] == target["kind"]
                   and target.get("name") in (None, r["metadata"]["name"])]
        assert matches, f"{overlay.name}: patch target {target} matches nothing"
        (operations,) = documents
        for operation in operations:
            if operation["op"] in {"replace", "remove", "test"}:
                missing = [r["metadata"]["name"] for r in matches if not _json_pointer_exists(r, operation["path"])]
                assert not missing, f"{overlay.name}: {operation['path']} is not in {missing}"
    namespaces = [d for entry in spec.get("resources", []) if (overlay / entry).is_file()
                  for d in load(overlay / entry) if d["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [spec["namespace"]]


# -- rendered overlays (kubectl kustomize) ------------------------------------------------------


def release(overlay: Path) -> str:
    """The version an overlay deploys (its ConfigMap crm-release, read by components/image-tags)."""
    spec = kustomization(overlay)
    documents = [d for entry in spec.get("resources", []) if (overlay / entry).is_file() for d in load(overlay / entry)]
    config = find(documents, "ConfigMap", "crm-release")
    assert config is not None, f"{overlay.name}: no ConfigMap crm-release"
    return str(config["data"]["version"])


def expected_objects(overlay: Path) -> set[tuple[str, str]]:
    """(kind, name) of everything an overlay must render: the base (migration Jobs named for the
    release), the overlay's own files and the resources of the components it takes."""
    spec = kustomization(overlay)
    version = release(overlay)
    objects = set()
    for resource in base_resources():
        name = resource["metadata"]["name"]
        if resource["kind"] == "Job":
            name = f"{component_of(resource)}-migrate-{version}"
        objects.add((resource["kind"], name))
    objects |= {(d["kind"], d["metadata"]["name"]) for entry in spec.get("resources", [])
                if (overlay / entry).is_file() for d in load(overlay / entry)}
    for entry in spec.get("components", []):
        objects |= {(r["kind"], r["metadata"]["name"]) for r in component_resources((overlay / entry).resolve().name)}
    return objects


def render(tree: Path) -> list[Resource]:
    assert KUBECTL is not None
    result = subprocess.run([KUBECTL, "kustomize", str(tree)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, f"kubectl kustomize {tree}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: rendered overlays not checked")
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_rendered_overlay_keeps_every_rule(overlay: Path) -> None:
    rendered = render(overlay)
    assert not hardening_violations(rendered)
    assert not settings_violations(rendered)
    namespace = kustomization(overlay)["namespace"]
    for resource in rendered:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == namespace, resource["metadata"]["name"]
    assert {(r["kind"], r["metadata"]["name"]) for r in rendered} == expected_objects(overlay)
    for name in components():
        replicas = find(rendered, "Deployment", name)["spec"]["replicas"]  # type: ignore[index]
        assert find(rendered, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] == replicas  # type: ignore[index]
    for _, pod in pod_templates(rendered):
        for container in pod["containers"]:
            assert re.search(r"(:[\w.-]+|@sha256:[0-9a-f]{64})$", container["image"]), container["image"]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: rendered overlays not checked")
def test_production_spreads_three_pods_over_zones() -> None:
    rendered = render(K8S / "overlays" / "prod")
    base = base_resources()
    for name in components():
        deployment = find(rendered, "Deployment", name)
        assert deployment is not None
        assert deployment["spec"]["replicas"] >= 3, name
        pod = deployment["spec"]["template"]
        zone = [c for c in pod["spec"].get("topologySpreadConstraints", [])
                if c["topologyKey"] == "topology.kubernetes.io/zone"]
        assert zone and zone[0]["whenUnsatisfiable"] == "DoNotSchedule", f"{name}: not spread over zones"
        assert zone[0]["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        before = main_container(find(base, "Deployment", name)["spec"]["template"]["spec"], name)["resources"]  # type: ignore[index]
        after = main_container(pod["spec"], name)["resources"]
        assert _cpu(after["requests"]["cpu"]) > _cpu(before["requests"]["cpu"]), f"{name}: not larger in prod"


def _cpu(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
