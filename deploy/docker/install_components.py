"""Install the platform's own components into the image's environment, without a build backend.

Each component (libs/crmkit, services/*, gateway) is copied to the destination and made importable
from its `src/` folder through one `.pth` file, as the editable install of `make install` makes it
on a laptop; the generated contracts (`libs/crmkit/src/crm`) ride along inside crmkit's folder.
A minimal `.dist-info` per component records its name and version, so `importlib.metadata` answers
as it does there (the gateway puts its version in the OpenAPI document). Building wheels instead
would need hatchling, which the hashed lock does not pin. The command line (cli/) is left out:
it drives a laptop (`crm run`), not a pod.

Usage, with the interpreter of the environment to install into:
`python install_components.py <repository> <destination>`.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tomllib
from pathlib import Path

from packaging.utils import canonicalize_name


def components(repository: Path) -> list[Path]:
    """The component folders the image runs: the kit, every service, the gateway."""
    services = sorted(p.parent for p in (repository / "services").glob("*/pyproject.toml"))
    return [repository / "libs" / "crmkit", *services, repository / "gateway"]


def install(repository: Path, destination: Path, site_packages: Path) -> list[Path]:
    """Copy each component's sources under `destination` and register them; the `src` folders."""
    sources = []
    for component in components(repository):
        target = destination / component.relative_to(repository) / "src"
        shutil.copytree(component / "src", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        sources.append(target)
        _write_metadata(site_packages, tomllib.loads((component / "pyproject.toml").read_text())["project"])
    (site_packages / "crm_platform.pth").write_text("".join(f"{source}\n" for source in sources))
    return sources


def _write_metadata(site_packages: Path, project: dict[str, str]) -> None:
    name, version = project["name"], project["version"]
    dist_info = site_packages / f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "INSTALLER").write_text("crm-image\n")
    (dist_info / "RECORD").write_text("".join(f"{dist_info.name}/{f},,\n" for f in ("METADATA", "INSTALLER", "RECORD")))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python install_components.py <repository> <destination>")
    site_packages = Path(sysconfig.get_paths()["purelib"])
    installed = install(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), site_packages)
    print(f"installed {len(installed)} components")
