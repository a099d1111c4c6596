"""Generate Python code and typed stubs from protos/ (run by `make gen`).

Generated code lands in libs/crmkit/src/crm/ (git-ignored) so that every service imports
it as `crm.<service>.v1` through its dependency on crmkit. Google's common protos are copied
from the googleapis-common-protos wheel into build/googleapis, which buf.yaml lists as a
second module, so `buf lint` resolves imports offline.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import grpc_tools
from google.rpc import status_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GOOGLEAPIS_COPY = ROOT / "build" / "googleapis"
OUT = ROOT / "libs" / "crmkit" / "src"
GOOGLE_PACKAGES = ("api", "rpc", "type")


def copy_google_protos() -> None:
    source_root = Path(status_pb2.__file__).resolve().parent.parent
    if GOOGLEAPIS_COPY.exists():
        shutil.rmtree(GOOGLEAPIS_COPY)
    for package in GOOGLE_PACKAGES:
        for proto in (source_root / package).rglob("*.proto"):
            target = GOOGLEAPIS_COPY / "google" / package / proto.relative_to(source_root / package)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(proto, target)


def generate() -> None:
    generated = OUT / "crm"
    if generated.exists():
        shutil.rmtree(generated)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{GOOGLEAPIS_COPY}",
        f"-I{well_known}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *sources,
    ]
    # protoc finds the mypy-protobuf plugins on PATH; they sit beside this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    if protoc.main(args) != 0:
        sys.exit("protoc failed; see the messages above")
    for directory in [generated, *(p for p in generated.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
        (directory / "py.typed").touch()


if __name__ == "__main__":
    copy_google_protos()
    generate()
    print(f"generated {sum(1 for _ in (OUT / 'crm').rglob('*_pb2.py'))} proto modules")
