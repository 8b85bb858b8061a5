"""Generate the Python stubs for proto/bidui/v1/*.proto into bidui/v1/.

The one way the stubs are made; never edit bidui/v1/*_pb2*.py by hand. tests/test_proto_stubs.py
fails when they are stale (the generators' release stamps aside).
Usage: ``python scripts/gen_proto.py [OUTPUT_ROOT]``.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def generate(out_root: Path) -> list[Path]:
    """Run protoc over every .proto file; returns the generated files."""
    protos = sorted(PROTO_ROOT.rglob("*.proto"))
    include = str(resources.files("grpc_tools") / "_proto")
    (out_root / "bidui" / "v1").mkdir(parents=True, exist_ok=True)
    # The mypy-protobuf plugins live beside the interpreter, which need not be on PATH.
    bindir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *(str(p.relative_to(PROTO_ROOT)) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return sorted((out_root / "bidui" / "v1").glob("*_pb2*"))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for path in generate(target):
        print(path)
