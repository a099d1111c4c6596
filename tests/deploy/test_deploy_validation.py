"""Every object deploy/k8s produces validates against the Kubernetes API schemas of a stated version
(kubernetes-validate, strict: unknown fields fail) and the custom resources against the
CloudNativePG schemas of tests/deploy/schemas; and a policy scan over the rendered overlays
finds no high-severity breach, each skipped rule justified where it is skipped.

The files themselves are validated without kubectl (so CI without it still checks every object);
the rendered overlays, where patches and replacements have run, need kubectl and skip without it.
The policy rules carry checkov's ids (CKV_K8S_*) for the same checks; checkov itself is not a
dependency (it pulls in several hundred megabytes of cloud SDKs): docs/operations.md, "Validation".
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .test_deploy_manifests import (
    BASE,
    KUBECTL,
    KUSTOMIZE_COMPONENTS,
    OVERLAYS,
    Resource,
    kustomization,
    load,
    pod_templates,
    render,
)

# The oldest Kubernetes minor the platform supports (native gRPC probes are GA from 1.27; the
# `restricted` Pod Security Standard and every API used here exist there and later).
KUBERNETES_VERSION = "1.32.0"
CRD_SCHEMAS = Path(__file__).resolve().parent / "schemas"


@cache
def custom_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON Schema of each custom resource the manifests use."""
    found = {}
    for path in CRD_SCHEMAS.glob("*.yaml"):
        document = yaml.safe_load(path.read_text())
        group_version = path.stem.replace("-", "/", 1)
        for kind, schema in document["schemas"].items():
            found[(group_version, kind)] = {**schema, "definitions": document["definitions"]}
    return found


def schema_errors(resource: Resource) -> list[str]:
    where = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
    custom = custom_schemas().get((resource["apiVersion"], resource["kind"]))
    if custom is not None:
        validator = jsonschema.Draft7Validator(custom)
        return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(resource)]
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{where}: no schema for {resource['apiVersion']} {resource['kind']} (add it to tests/deploy/schemas)"]
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: {'/'.join(map(str, exc.path))}: {exc.message}"]
    return []


def tree_files(tree: Path) -> list[Resource]:
    spec = kustomization(tree)
    return [d for entry in spec.get("resources", []) if (tree / entry).is_file() for d in load(tree / entry)]


@pytest.mark.parametrize("tree", [BASE, *OVERLAYS, *KUSTOMIZE_COMPONENTS], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_file_object_validates(tree: Path) -> None:
    resources = tree_files(tree)
    assert resources or tree in OVERLAYS or kustomization(tree).get("replacements"), f"{tree}: nothing validated"
    errors = [e for r in resources for e in schema_errors(r)]
    assert not errors, "\n".join(errors)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: rendered overlays not validated")
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_every_rendered_object_validates(overlay: Path) -> None:
    errors = [e for r in render(overlay) for e in schema_errors(r)]
    assert not errors, "\n".join(errors)


def test_the_validators_reject_what_a_cluster_would() -> None:
    """The checks bite: an unknown field and a misplaced CNPG field are both caught."""
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {}}
    assert schema_errors(config)
    cluster = load(KUSTOMIZE_COMPONENTS[0].parent / "cloudnative-pg" / "risk.yaml")[0]
    cluster["spec"]["backup"]["destinationPath"] = "s3://wrong-level"
    assert any("destinationPath" in e for e in schema_errors(cluster))


# -- policy scan ------------------------------------------------------------------------------------

# Rules skipped, each with its reason (checkov id -> why it does not apply here).
SKIPPED = {
    "CKV_K8S_43": "images by digest: the overlay pins digests at deploy time (docs/operations.md, "
                  "'Build the images'); the repository can only name the release tag",
    "CKV_K8S_15": "imagePullPolicy Always: tags are immutable releases and prod pins digests, so "
                  "IfNotPresent pulls the same bytes without a registry round trip per pod start",
    "CKV_K8S_35": "secrets as files instead of variables: every setting, secrets included, is read "
                  "from the environment by pydantic-settings; the values come from secretKeyRef, "
                  "never from the manifests, and the process never logs its environment",
}


def _containers(pod: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("init", c) for c in pod.get("initContainers", [])] + [("main", c) for c in pod["containers"]]


def policy_findings(resources: list[Resource]) -> list[tuple[str, str]]:
    """(checkov id, where) for every breach of a high-severity workload rule."""
    findings: list[tuple[str, str]] = []

    def check(rule: str, ok: bool, where: str) -> None:
        if not ok and rule not in SKIPPED:
            findings.append((rule, where))

    for workload, pod in pod_templates(resources):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod_security = pod.get("securityContext", {})
        check("CKV_K8S_38", pod.get("automountServiceAccountToken") is False, name)
        check("CKV_K8S_41", pod.get("serviceAccountName") not in (None, "default"), name)
        for flag, rule in (("hostPID", "CKV_K8S_17"), ("hostIPC", "CKV_K8S_18"), ("hostNetwork", "CKV_K8S_19")):
            check(rule, not pod.get(flag), name)
        check("CKV_K8S_29", bool(pod_security), name)
        for role, container in _containers(pod):
            where = f"{name}/{container['name']}"
            security = container.get("securityContext", {})
            effective = {**pod_security, **security}
            capabilities = security.get("capabilities", {})
            check("CKV_K8S_16", not security.get("privileged"), where)
            check("CKV_K8S_20", security.get("allowPrivilegeEscalation") is False, where)
            check("CKV_K8S_22", security.get("readOnlyRootFilesystem") is True, where)
            check("CKV_K8S_23", effective.get("runAsNonRoot") is True, where)
            check("CKV_K8S_40", int(effective.get("runAsUser", 0)) >= 10000, where)
            check("CKV_K8S_28", "ALL" in capabilities.get("drop", []) or "NET_RAW" in capabilities.get("drop", []),
                  where)
            check("CKV_K8S_37", capabilities.get("drop") == ["ALL"], where)
            check("CKV_K8S_25", not capabilities.get("add"), where)
            check("CKV_K8S_31", (effective.get("seccompProfile") or {}).get("type") == "RuntimeDefault", where)
            limits = container.get("resources", {}).get("limits", {})
            requests = container.get("resources", {}).get("requests", {})
            check("CKV_K8S_10", "cpu" in requests, where)
            check("CKV_K8S_11", "cpu" in limits, where)
            check("CKV_K8S_12", "memory" in requests, where)
            check("CKV_K8S_13", "memory" in limits, where)
            image = container["image"]
            check("CKV_K8S_14", ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), where)
            check("CKV_K8S_43", "@sha256:" in image, where)
            check("CKV_K8S_15", container.get("imagePullPolicy") == "Always", where)
            check("CKV_K8S_35", not any("secretKeyRef" in e.get("valueFrom", {}) for e in container.get("env", [])),
                  where)
            if role == "main" and workload["kind"] == "Deployment":
                check("CKV_K8S_8", "livenessProbe" in container, where)
                check("CKV_K8S_9", "readinessProbe" in container, where)
    for resource in resources:
        if resource["kind"] not in {"Namespace"} and resource["apiVersion"] != "kustomize.config.k8s.io/v1alpha1":
            check("CKV_K8S_21", resource["metadata"].get("namespace") not in (None, "default"),
                  f"{resource['kind']}/{resource['metadata']['name']}")
    return findings


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: rendered overlays not scanned")
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_policy_scan_finds_nothing_high(overlay: Path) -> None:
    findings = policy_findings(render(overlay))
    assert not findings, "\n".join(f"{rule}: {where}" for rule, where in findings)


def test_the_policy_scan_bites() -> None:
    deployment = next(d for d in load(BASE / "risk.yaml") if d["kind"] == "Deployment")
    deployment["metadata"]["namespace"] = "crm"
    for container in _containers(deployment["spec"]["template"]["spec"]):
        container[1]["image"] += ":1.0.0"  # as the base's `images:` tags it
    assert not policy_findings([deployment])
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    del deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert {rule for rule, _ in policy_findings([deployment])} == {"CKV_K8S_16", "CKV_K8S_9"}
