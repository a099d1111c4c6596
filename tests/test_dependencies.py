"""Each component declares exactly what its code imports.

For every component (libs/crmkit, services/*, gateway, cli) the third-party imports of its `src/`
(read with ast, resolved to the installed distribution that provides them) must be declared in
its pyproject.toml, and every declared runtime dependency must be imported somewhere, except the
few in RUNTIME_ONLY, each with its reason. crmkit's `testing` module is the `testing` extra's.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ["libs/crmkit", *sorted(f"services/{p.name}" for p in (ROOT / "services").iterdir()
                                     if (p / "pyproject.toml").exists()), "gateway", "cli"]
FIRST_PARTY_MODULES = {"crm", "crmkit", "crm_profile", "crm_segment", "crm_campaign", "crm_feedback", "crm_risk",
                       "crm_gateway", "crm_cli"}

# Declared but never imported, on purpose: (component, distribution) -> why. Extras such as
# uvicorn[standard] (httptools, websockets, uvloop: loaded by uvicorn itself) need no entry, as
# they are not declared by name. Empty today; an entry that goes stale fails the test.
RUNTIME_ONLY: dict[tuple[str, str], str] = {}
# The one module whose imports may come from the `testing` extra instead of the runtime set.
TESTING_MODULE = "crmkit.testing"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return normalise(match.group(0))


def declared(component: str) -> tuple[set[str], set[str]]:
    """(runtime dependencies, the `testing` extra's) of a component's pyproject.toml."""
    project = tomllib.loads((ROOT / component / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return ({requirement_name(r) for r in project.get("dependencies", [])},
            {requirement_name(r) for r in extras.get("testing", [])})


@cache
def distribution_of_file() -> dict[Path, str]:
    owners: dict[Path, str] = {}
    for distribution in importlib.metadata.distributions():
        name = normalise(distribution.metadata["Name"])
        for file in distribution.files or ():
            if file.suffix in (".py", ".so", ".pyd") or file.name.endswith(".pyi"):
                owners[Path(distribution.locate_file(file)).resolve()] = name
    return owners


@cache
def distribution_of_module(module: str) -> str | None:
    """The installed distribution providing `module`, walking up to its package when needed."""
    parts = module.split(".")
    while parts:
        try:
            spec = importlib.util.find_spec(".".join(parts))
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin not in (None, "built-in", "frozen"):
            return distribution_of_file().get(Path(spec.origin).resolve())
        parts.pop()
    return None


def imported_modules(source: Path) -> set[str]:
    """Every absolute module a file imports (`from a import b` counts as `a.b`: b may be a module)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and top not in FIRST_PARTY_MODULES


def imports_of(component: str) -> dict[str, set[str]]:
    """Distribution -> the source files (relative) that import it, for one component's src/."""
    found: dict[str, set[str]] = {}
    for source in sorted((ROOT / component / "src").rglob("*.py")):
        relative = str(source.relative_to(ROOT / component / "src"))
        for module in imported_modules(source):
            if module.split(".")[0] in FIRST_PARTY_MODULES - {"crm"}:
                distribution = normalise(module.split(".")[0]) if module.startswith("crmkit") else None
            elif third_party(module):
                distribution = distribution_of_module(module)
                assert distribution is not None, f"{component}: {relative} imports {module}, not installed"
            else:
                continue
            if distribution is not None and distribution != normalise(Path(component).name):
                found.setdefault(distribution, set()).add(relative)
    return found


def is_testing_module(relative: str) -> bool:
    return relative.removesuffix(".py").replace("/", ".") == TESTING_MODULE


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_third_party_import_is_declared(component: str) -> None:
    runtime, testing = declared(component)
    undeclared = {}
    for distribution, files in imports_of(component).items():
        runtime_files = {f for f in files if not is_testing_module(f)}
        if runtime_files and distribution not in runtime:
            undeclared[distribution] = sorted(runtime_files)
        elif files - runtime_files and distribution not in runtime | testing:
            undeclared[distribution] = sorted(files - runtime_files)
    assert undeclared == {}, f"{component}/pyproject.toml must declare what its code imports"


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_declared_runtime_dependency_is_imported(component: str) -> None:
    runtime, _ = declared(component)
    used = {d for d, files in imports_of(component).items() if any(not is_testing_module(f) for f in files)}
    unused = sorted(d for d in runtime - used if (component, d) not in RUNTIME_ONLY)
    assert unused == [], f"{component}/pyproject.toml declares runtime dependencies its code never imports"
    stale = sorted(d for c, d in RUNTIME_ONLY if c == component and d in used)
    assert stale == [], f"RUNTIME_ONLY names imported dependencies of {component}: drop them"


def test_the_test_fixtures_are_not_a_runtime_dependency() -> None:
    runtime, testing = declared("libs/crmkit")
    assert {"pytest", "pytest-asyncio"} <= testing and not {"pytest", "pytest-asyncio"} & runtime


def test_the_workspace_lock_covers_every_component() -> None:
    """The root pyproject.toml, which the lock is compiled from, lists every component's needs."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    workspace = {requirement_name(r) for r in root["dependencies"]}
    workspace |= {requirement_name(r) for extra in root.get("optional-dependencies", {}).values() for r in extra}
    needed = set().union(*(set().union(*declared(c)) for c in COMPONENTS)) - {"crmkit"}
    assert needed - workspace == set()
