"""The container image's build (Dockerfile, .dockerignore, deploy/docker/*.py) against the code:
what the image leaves out is never imported by a process it runs, every component is installed
from its sources with its metadata, and the Dockerfile keeps its hashed, non-root, precompiled shape.

The image itself is not built here (no container engine in the test run).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

from packaging.utils import canonicalize_name

REPOSITORY = Path(__file__).resolve().parents[2]
DOCKER = REPOSITORY / "deploy" / "docker"
# Modules only the tests import (fixtures with the embedded PostgreSQL and pytest).
TEST_ONLY_MODULES = {REPOSITORY / "libs" / "crmkit" / "src" / "crmkit" / "testing.py"}


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"image_{name}", DOCKER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runtime_sources() -> list[Path]:
    roots = [REPOSITORY / "libs" / "crmkit" / "src" / "crmkit", REPOSITORY / "gateway" / "src",
             *(REPOSITORY / "services").glob("*/src")]
    return [p for root in roots for p in root.rglob("*.py") if p not in TEST_ONLY_MODULES]


def _imported_top_levels(sources: list[Path]) -> set[str]:
    names = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_the_image_leaves_out_build_and_test_tools() -> None:
    excluded = set(_script("image_excludes").excluded(REPOSITORY / "pyproject.toml"))
    assert {"pytest", "ruff", "mypy", "buf-bin", "uv", "hypothesis", "grpcio-tools", "pgserver"} <= excluded


def test_the_image_keeps_every_package_a_process_imports() -> None:
    excluded = set(_script("image_excludes").excluded(REPOSITORY / "pyproject.toml"))
    distributions = metadata.packages_distributions()
    needed = {canonicalize_name(d) for name in _imported_top_levels(_runtime_sources())
              for d in distributions.get(name, [])}
    assert needed, "no third-party import found: the scan is broken"
    assert not needed & excluded, f"the image would leave out {sorted(needed & excluded)}, which the code imports"
    for source in _runtime_sources():  # the test-only module stays out of every process
        assert "crmkit.testing" not in source.read_text(), f"{source} imports crmkit.testing"


def test_components_install_from_their_sources_with_their_versions(tmp_path: Path) -> None:
    site_packages, destination = tmp_path / "site-packages", tmp_path / "app"
    site_packages.mkdir()
    _script("install_components").install(REPOSITORY, destination, site_packages)
    expected = {"crmkit", "crm_gateway", *(f"crm_{p.parent.name}" for p in (REPOSITORY / "services").glob("*/src"))}
    # -S: no site-packages but the one installed into, so every answer comes from the install.
    probe = (f"import site, importlib; site.addsitedir({str(site_packages)!r}); from importlib import metadata;"
             f"print({{m: importlib.import_module(m).__file__ for m in {sorted(expected)!r}}});"
             f"print(metadata.version('crm-gateway'))")
    result = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True)
    files, version = result.stdout.splitlines()
    assert all(path.startswith(str(destination)) for path in ast.literal_eval(files).values())
    assert version == tomllib.loads((REPOSITORY / "gateway" / "pyproject.toml").read_text())["project"]["version"]
    assert not (destination / "cli").exists(), "the command line stays out of the image"


def test_dockerfile_installs_the_hashed_lock_runs_codegen_and_runs_unprivileged() -> None:
    dockerfile = (REPOSITORY / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    text = "\n".join(instructions)
    assert re.search(r"install --require-hashes --no-deps --only-binary=:all:\s*\\?\s*-r requirements.lock", text)
    assert "tools/gen_protos.py" in text
    assert "PYTHONDONTWRITEBYTECODE" not in text, "bytecode is precompiled and must be used"
    assert "compileall" in text
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert len(stages) == 2 and all(line.startswith("FROM ${PYTHON_IMAGE}") for line in stages)
    runtime = text.split(stages[-1], 1)[1]
    users = re.findall(r"^USER (\S+)", runtime, flags=re.MULTILINE)
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]), "the last USER is a numeric non-root id"
    assert not re.search(r"apt-get|gcc|build-essential", runtime), "no compiler or package install at run time"


def test_dockerignore_admits_only_what_the_build_copies() -> None:
    rules = [line for line in (REPOSITORY / ".dockerignore").read_text().splitlines()
             if line and not line.startswith("#")]
    assert rules[0] == "*", "an allow-list: everything else (.crm/ secrets, .venv, .git) stays out"
    allowed = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (REPOSITORY / "Dockerfile").read_text(), flags=re.MULTILINE)
    sources = [source.rstrip("/") for line in copied for source in line.split()]
    for source in sources:
        assert (REPOSITORY / source).exists(), f"COPY {source}: no such path"
        assert any(source == a or source.startswith(f"{a}/") or a.startswith(f"{source}/") for a in allowed), source
    assert not any(a.startswith((".crm", ".venv", ".git")) for a in allowed)
