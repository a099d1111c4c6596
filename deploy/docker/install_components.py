"""Install the kit and one component into its image's environment, without a build backend.

The kit (libs/crmkit) and the image's component (a service or the gateway) are copied to the
destination and made importable from its `src/` folder through one `.pth` file, as the editable
install of `make install` makes it on a laptop; the generated contracts (`libs/crmkit/src/crm`)
ride along inside crmkit's folder.
A minimal `.dist-info` per component records its name and version, so `importlib.metadata` answers
as it does there (the gateway puts its version in the OpenAPI document). Building wheels instead
would need hatchling, which the hashed lock does not pin. The other components stay out, and so
does the command line (cli/): it drives a laptop (`crm run`), not a pod. `<destination>/serve.py`
runs the component as `python -m crm_<component>` does: the image's default command.

Usage, with the interpreter of the environment to install into:
`python install_components.py <repository> <destination> <component>`.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
import tomllib
from pathlib import Path

from packaging.utils import canonicalize_name


def folders(repository: Path, component: str) -> list[Path]:
    """The folders an image of `component` runs: the kit and the component's own."""
    own = repository / "gateway" if component == "gateway" else repository / "services" / component
    if not (own / "pyproject.toml").is_file():
        raise SystemExit(f"unknown component {component!r}: neither gateway nor a folder of services/")
    return [repository / "libs" / "crmkit", own]


LAUNCHER = '''"""The image's default command: `python -m {module}` (written by install_components.py)."""
import runpy

runpy.run_module("{module}", run_name="__main__", alter_sys=True)
'''


def install(repository: Path, destination: Path, site_packages: Path, component: str) -> list[Path]:
    """Copy the kit's and the component's sources under `destination` and register them; the
    `src` folders."""
    sources = []
    for folder in folders(repository, component):
        target = destination / folder.relative_to(repository) / "src"
        shutil.copytree(folder / "src", target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        sources.append(target)
        _write_metadata(site_packages, tomllib.loads((folder / "pyproject.toml").read_text())["project"])
    (site_packages / "crm_platform.pth").write_text("".join(f"{source}\n" for source in sources))
    (destination / "serve.py").write_text(LAUNCHER.format(module=f"crm_{component}"))
    return sources


def _write_metadata(site_packages: Path, project: dict[str, str]) -> None:
    name, version = project["name"], project["version"]
    dist_info = site_packages / f"{canonicalize_name(name).replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "INSTALLER").write_text("crm-image\n")
    (dist_info / "RECORD").write_text("".join(f"{dist_info.name}/{f},,\n" for f in ("METADATA", "INSTALLER", "RECORD")))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python install_components.py <repository> <destination> <component>")
    site_packages = Path(sysconfig.get_paths()["purelib"])
    installed = install(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), site_packages, sys.argv[3])
    print(f"installed {len(installed)} components")
