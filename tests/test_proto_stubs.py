"""The checked-in stubs in bidui/v1 are what scripts/gen_proto.py makes from proto/.

The generators stamp their own release into the stubs (``GRPC_GENERATED_VERSION``, the protobuf
gencode version). Those stamps are not the contract: a patch release of grpcio-tools changes them
and nothing else. So the freshness check compares the stubs with the stamps taken out, and a
second check holds what the stamps do mean: the runtime refuses stubs stamped newer than itself, so
no stamp may be newer than the lower bounds in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUBS = ROOT / "bidui" / "v1"

_GRPC_STAMP = re.compile(rb"^GRPC_GENERATED_VERSION = '([0-9.]+)'$", re.M)
_PROTOBUF_COMMENT = re.compile(rb"^# Protobuf Python Version: ([0-9.]+)$", re.M)
_PROTOBUF_CHECK = re.compile(
    rb"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*)"
    rb"(\d+),\s*(\d+),\s*(\d+),"
)


def _without_stamps(text: bytes) -> bytes:
    text = _GRPC_STAMP.sub(b"GRPC_GENERATED_VERSION = '<stamp>'", text)
    text = _PROTOBUF_COMMENT.sub(b"# Protobuf Python Version: <stamp>", text)
    return _PROTOBUF_CHECK.sub(rb"\1<stamp>,", text)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _lower_bound(requirement_name: str) -> tuple[int, ...]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        match = re.fullmatch(rf"{re.escape(requirement_name)}>=([0-9.]+)", requirement)
        if match:
            return _version(match.group(1))
    raise AssertionError(f"pyproject.toml declares no lower bound for {requirement_name}")


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "bidui" / "v1").glob("*_pb2*")}
    checked_in = {p.name: p.read_bytes() for p in STUBS.glob("*_pb2*")}
    assert fresh, "gen_proto.py produced nothing"
    assert sorted(fresh) == sorted(checked_in), "stub files differ: run scripts/gen_proto.py"
    stale = [n for n in fresh if _without_stamps(fresh[n]) != _without_stamps(checked_in[n])]
    assert not stale, f"stale stubs {stale}: run python scripts/gen_proto.py"


def test_stamp_normalisation_still_sees_a_real_change() -> None:
    stub = (STUBS / "catalog_pb2_grpc.py").read_bytes()
    assert _GRPC_STAMP.search(stub), "the grpc stamp's format changed: update _GRPC_STAMP"
    changed = stub.replace(b"ListResources", b"ListResourcez", 1)
    assert _without_stamps(changed) != _without_stamps(stub)
    restamped = _GRPC_STAMP.sub(b"GRPC_GENERATED_VERSION = '9.9.9'", stub)
    assert _without_stamps(restamped) == _without_stamps(stub)


def test_stamps_are_not_newer_than_the_declared_lower_bounds() -> None:
    grpc_floor = _lower_bound("grpcio")
    protobuf_floor = _lower_bound("protobuf")
    for path in sorted(STUBS.glob("*_pb2_grpc.py")):
        stamp = _GRPC_STAMP.search(path.read_bytes())
        assert stamp, f"{path.name} has no GRPC_GENERATED_VERSION"
        stamped = stamp.group(1).decode()
        assert _version(stamped) <= grpc_floor, (
            f"{path.name} needs grpcio>={stamped}: raise the bound in pyproject.toml"
        )
    for path in sorted(STUBS.glob("*_pb2.py")):
        check = _PROTOBUF_CHECK.search(path.read_bytes())
        assert check, f"{path.name} has no protobuf runtime check"
        gencode = tuple(int(part) for part in check.group(2, 3, 4))
        assert gencode <= protobuf_floor, f"{path.name} needs protobuf>={gencode}"


def test_stubs_are_not_a_top_level_proto_package() -> None:
    # The import name `proto` belongs to proto-plus; our stubs live under bidui.v1.
    from bidui.v1 import comparison_pb2

    assert comparison_pb2.DESCRIPTOR.package == "bidui.v1"
    spec = importlib.util.find_spec("proto")
    assert spec is None or "bidui" not in (spec.origin or "")
