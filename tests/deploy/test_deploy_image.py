"""The container images' build (Dockerfile, .dockerignore, deploy/docker/) against the code: each
image's requirement file is its component's share of the lock and nothing more, every package a
process imports is in it, no build or test tool is, the Dockerfile keeps its hashed, per-component,
non-root shape (read with dockerfile-parse), and an environment built from one requirement file
runs its component on its own (slow test, from uv's cache, offline).

Not tested here, for want of a container engine: that `docker build` succeeds for every
COMPONENT, that each pinned wheel exists for the base image's platform, the image's final size and
file list, and that the image starts under a read-only root filesystem as user 10001.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser
from packaging.utils import canonicalize_name

REPOSITORY = Path(__file__).resolve().parents[2]
DOCKER = REPOSITORY / "deploy" / "docker"
REQUIREMENTS = DOCKER / "requirements"
TEST_ONLY_MODULES = {REPOSITORY / "libs" / "crmkit" / "src" / "crmkit" / "testing.py"}
# Never in an image: test runners, linters, type checker and its compiler, the code generator,
# the embedded PostgreSQL, package managers and build backends.
BUILD_AND_TEST_TOOLS = {"pytest", "pytest-asyncio", "pytest-timeout", "hypothesis", "ruff", "mypy", "buf-bin", "uv",
                        "grpcio-tools", "mypy-protobuf", "types-protobuf", "pgserver", "pip", "setuptools", "wheel",
                        "dockerfile-parse", "kubernetes-validate", "rich", "psutil"}
# The analytics stack belongs to segment, risk, feedback (its text classifiers) and campaign (response
# propensity) only.
ANALYTICS = {"scikit-learn", "scipy", "numpy", "joblib", "threadpoolctl"}


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"image_{name}", DOCKER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def images() -> dict[str, Path]:
    return _script("image_requirements").components()  # type: ignore[no-any-return]


def pinned(component: str) -> dict[str, str]:
    """Canonical name -> version pinned in an image's requirement file."""
    text = (REQUIREMENTS / f"{component}.txt").read_text()
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)==(\S+)", text, re.MULTILINE)}


def _dependency_scan() -> ModuleType:
    """tests/test_dependencies.py: its import scan resolves each imported module to the distribution
    that provides it (namespace packages such as opentelemetry included)."""
    spec = importlib.util.spec_from_file_location("dependency_scan", REPOSITORY / "tests" / "test_dependencies.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requirement_files_are_the_current_share_of_the_lock() -> None:
    files = _script("image_requirements").render()
    assert set(files) == {f"{name}.txt" for name in [*images(), "codegen"]}
    for name, text in files.items():
        assert (REQUIREMENTS / name).read_text() == text, (
            f"deploy/docker/requirements/{name} is stale: run `python deploy/docker/image_requirements.py`")


def test_every_line_is_the_locks_own_with_its_hashes() -> None:
    lock = _script("image_requirements").lock_entries((REPOSITORY / "requirements.lock").read_text())
    for component in [*images(), "codegen"]:
        versions = pinned(component)
        assert versions, component
        for name, version in versions.items():
            assert f"=={version}" in lock[name], f"{component}: {name}=={version} is not the lock's pin"
        text = (REQUIREMENTS / f"{component}.txt").read_text()
        assert text.count("--hash=sha256:") >= len(versions), f"{component}: a line without its hashes"


def test_no_image_carries_build_or_test_tools_and_the_gateway_no_analytics() -> None:
    for component in images():
        carried = set(pinned(component))
        assert not carried & BUILD_AND_TEST_TOOLS, f"{component} would carry {sorted(carried & BUILD_AND_TEST_TOOLS)}"
    assert not set(pinned("gateway")) & (ANALYTICS | {"pyarrow", "cel-python"}), "the gateway carries analytics"
    assert not set(pinned("profile")) & ANALYTICS, "profile carries the analytics stack"
    assert all("scikit-learn" in pinned(component) for component in ("risk", "segment", "feedback", "campaign"))
    assert "pyarrow" in pinned("profile") and "pyarrow" not in pinned("risk")


def test_each_image_holds_every_package_its_processes_import() -> None:
    scan = _dependency_scan()
    first_party = _script("image_requirements").FIRST_PARTY
    kit = {d for d, files in scan.imports_of("libs/crmkit").items() if not files <= {"crmkit/testing.py"}}
    for component, folder in images().items():
        needed = {canonicalize_name(d) for d in kit | set(scan.imports_of(str(folder.relative_to(REPOSITORY))))}
        needed -= first_party
        assert needed, "no third-party import found: the scan is broken"
        missing = needed - set(pinned(component))
        assert not missing, f"{component}: imports {sorted(missing)}, which its image would not hold"


def test_one_component_installs_with_the_kit_its_version_and_a_launcher(tmp_path: Path) -> None:
    site_packages, destination = tmp_path / "site-packages", tmp_path / "app"
    site_packages.mkdir()
    _script("install_components").install(REPOSITORY, destination, site_packages, "risk")
    # -S: no site-packages but the one installed into, so every answer comes from the install.
    probe = (f"import site, importlib, importlib.util; site.addsitedir({str(site_packages)!r});"
             "from importlib import metadata;"
             "print({m: importlib.util.find_spec(m).origin for m in ('crmkit', 'crm_risk')});"
             "print([m for m in ('crm_gateway', 'crm_profile', 'crm_cli') if importlib.util.find_spec(m)]);"
             "print(metadata.version('crm-risk'))")
    result = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True)
    files, others, version = result.stdout.splitlines()
    assert all(path.startswith(str(destination)) for path in ast.literal_eval(files).values())
    assert others == "[]", "only the kit and the image's own component are installed"
    assert version == tomllib.loads((REPOSITORY / "services/risk/pyproject.toml").read_text())["project"]["version"]
    assert "run_module(\"crm_risk\"" in (destination / "serve.py").read_text()
    with pytest.raises(SystemExit, match="unknown component"):
        _script("install_components").install(REPOSITORY, tmp_path / "other", site_packages, "cli")


# -- the Dockerfile, parsed --------------------------------------------------------------------


def _instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(fileobj=(REPOSITORY / "Dockerfile").open("rb"))
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def _stages(instructions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    stages: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            current = stages.setdefault(instruction["value"].split()[-1], [])
        current.append(instruction)
    return stages


def test_dockerfile_builds_one_component_from_its_hashed_share_of_the_lock() -> None:
    instructions = _instructions()
    stages = _stages(instructions)
    assert list(stages) == ["codegen", "build", "runtime"]
    assert all(s[0]["value"].startswith("${PYTHON_IMAGE} AS ") for s in stages.values()), "one base for every stage"
    assert not any(i["instruction"] == "ADD" for i in instructions), "COPY only (ADD fetches and unpacks)"
    installs = [i["value"] for i in instructions if i["instruction"] == "RUN" and " install " in i["value"]]
    assert len(installs) == 2
    for install in installs:
        assert re.search(r"install --require-hashes --no-deps --only-binary=:all:\s+-r \"?deploy/docker/requirements/",
                         install), install
    assert '${COMPONENT}.txt' in installs[1] and "codegen.txt" in installs[0]
    assert any("tools/gen_protos.py" in i["value"] for i in stages["codegen"] if i["instruction"] == "RUN")
    build_args = {i["value"].split("=")[0] for i in stages["runtime"] if i["instruction"] == "ARG"}
    assert {"COMPONENT", "VERSION"} <= build_args


def test_the_runtime_stage_runs_unprivileged_with_nothing_to_build_with() -> None:
    runtime = _stages(_instructions())["runtime"]
    text = "\n".join(i["value"] for i in runtime if i["instruction"] == "RUN")
    assert not re.search(r"apt-get|apk |gcc|build-essential|pip install|pip3 install", text)
    assert "pip uninstall --yes" in text and "setuptools wheel" in text, "the base image's pip and friends go"
    copies = [i["value"] for i in runtime if i["instruction"] == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies), "only the built environment and sources"
    users = [i["value"] for i in runtime if i["instruction"] == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), "the last USER is a numeric non-root id"
    environment = " ".join(i["value"] for i in runtime if i["instruction"] == "ENV")
    assert "PYTHONDONTWRITEBYTECODE" not in environment, "bytecode is precompiled and must be used"
    assert "CRM_VERSION=${VERSION}" in environment
    labels = " ".join(i["value"] for i in runtime if i["instruction"] == "LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    (command,) = [i["value"] for i in runtime if i["instruction"] == "CMD"]
    assert json.loads(command) == ["python", "/app/serve.py"], "exec form: the process is PID 1 and gets SIGTERM"
    assert any("compileall" in i["value"] for i in _stages(_instructions())["build"] if i["instruction"] == "RUN")


def test_dockerignore_admits_only_what_the_build_copies() -> None:
    rules = [line for line in (REPOSITORY / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert rules[0] == "*", "an allow-list: everything else (.crm/ secrets, .venv, .git) stays out"
    allowed = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    copies = [i["value"] for i in _instructions() if i["instruction"] == "COPY" and "--from" not in i["value"]]
    sources = [source.rstrip("/") for copy in copies for source in copy.split()[:-1]]
    assert sources
    for source in sources:
        assert (REPOSITORY / source).exists(), f"COPY {source}: no such path"
        assert any(source == a or source.startswith(f"{a}/") or a.startswith(f"{source}/") for a in allowed), source
    assert not any(a.startswith((".crm", ".venv", ".git")) for a in allowed)


# -- an image's environment, built for real (without the container) ------------------------------

UV = REPOSITORY / ".venv" / "bin" / "uv"


@pytest.mark.slow
@pytest.mark.parametrize("component", ["gateway", "profile", "segment", "campaign", "feedback", "risk"])
def test_an_environment_from_one_requirement_file_runs_its_component(component: str, tmp_path: Path) -> None:
    """What the build stage does, with uv instead of pip and from uv's cache (offline): the
    component imports with nothing but its own set, the others' packages are absent, and the
    launcher reaches the component's own start-up (which stops at the missing configuration)."""
    if not UV.exists():
        pytest.skip("no .venv/bin/uv: run `make install`")
    environment, app = tmp_path / "env", tmp_path / "app"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(environment)], check=True)
    python = str(environment / "bin" / "python")
    installed = subprocess.run([str(UV), "pip", "install", "-q", "--offline", "--python", python, "--require-hashes",
                                "--no-deps", "-r", str(REQUIREMENTS / f"{component}.txt")],
                               capture_output=True, text=True, check=False)
    if installed.returncode != 0:
        pytest.skip(f"uv's cache lacks a wheel of the lock (offline install failed): {installed.stderr[-300:]}")
    subprocess.run([python, str(DOCKER / "install_components.py"), str(REPOSITORY), str(app), component],
                   check=True, capture_output=True)
    absent = sorted((BUILD_AND_TEST_TOOLS | ANALYTICS | {"pyarrow"}) - set(pinned(component)))
    modules = {"scikit-learn": "sklearn", "buf-bin": "buf", "grpcio-tools": "grpc_tools", "pyyaml": "yaml",
               "dockerfile-parse": "dockerfile_parse", "kubernetes-validate": "kubernetes_validate",
               "mypy-protobuf": "mypy_protobuf", "types-protobuf": "google-stubs"}
    probe = (f"import importlib, importlib.util; importlib.import_module('crm_{component}.app');"
             f"print([m for m in {[modules.get(n, n.replace('-', '_')) for n in absent]!r}"
             f" + ['crm_cli', *{[f'crm_{c}' for c in images() if c != component]!r}] if importlib.util.find_spec(m)])")
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", f"{component}'s environment holds {result.stdout.strip()}"
    # No settings in the environment: the process must reach its own settings check and say so.
    started = subprocess.run([python, str(app / "serve.py")], capture_output=True, text=True, timeout=60,
                             check=False, cwd=tmp_path, env={"PATH": str(environment / "bin")})
    assert started.returncode == 2 and "configuration error" in started.stderr, started.stderr[-2000:]

