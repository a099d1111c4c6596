"""Print the installed distributions the runtime image leaves out, one per line.

The image installs exactly `requirements.lock` (hashed), runs the code generator with it, then
removes what no process of the platform imports: the `dev` extra of pyproject.toml (test runner,
linters, the type checker with its C compiler mypyc, buf, uv), the code generator, and the embedded
PostgreSQL of `make run`, together with every dependency that nothing kept still needs. Worked out
from the installed packages' metadata, so a dependency added to pyproject.toml is kept or left out
without editing this file.

Usage, with the interpreter of the environment to prune: `python image_excludes.py pyproject.toml`.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Main dependencies that only the image build or a laptop uses; no service or gateway module
# imports them (tests/deploy checks that against the sources).
BUILD_AND_LOCAL_ONLY = frozenset({
    "grpcio-tools",  # tools/gen_protos.py, run once while the image is built
    "pgserver",  # the embedded PostgreSQL of `make run` and of the test fixtures
})


def _applies(requirement: Requirement, extras: Iterable[str]) -> bool:
    """Whether a requirement's environment marker holds here for any of the extras asked for."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))


def closure(roots: Iterable[Requirement]) -> set[str]:
    """Canonical names of the installed distributions `roots` need, transitively, extras included."""
    names: set[str] = set()
    visited: set[tuple[str, frozenset[str]]] = set()
    pending = [root for root in roots if _applies(root, ())]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in visited:
            continue
        visited.add(key)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed, so there is nothing to leave out
        names.add(name)
        for spec in distribution.requires or ():
            dependency = Requirement(spec)
            if _applies(dependency, requirement.extras):
                pending.append(dependency)
    return names


def excluded(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    main = [Requirement(spec) for spec in project["dependencies"]]
    kept = [r for r in main if canonicalize_name(r.name) not in BUILD_AND_LOCAL_ONLY]
    dropped = [r for r in main if canonicalize_name(r.name) in BUILD_AND_LOCAL_ONLY]
    dropped += [Requirement(spec) for spec in project["optional-dependencies"]["dev"]]
    return sorted(closure(dropped) - closure(kept))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python image_excludes.py pyproject.toml")
    print("\n".join(excluded(Path(sys.argv[1]))))
