"""The checked-in stubs in bidui/v1 are exactly what scripts/gen_proto.py makes from proto/."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "bidui" / "v1").glob("*_pb2*")}
    checked_in = {p.name: p.read_bytes() for p in (ROOT / "bidui" / "v1").glob("*_pb2*")}
    assert fresh, "gen_proto.py produced nothing"
    assert sorted(fresh) == sorted(checked_in), "stub files differ: run scripts/gen_proto.py"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, f"stale stubs {stale}: run python scripts/gen_proto.py"


def test_stubs_are_not_a_top_level_proto_package() -> None:
    # The import name `proto` belongs to proto-plus; our stubs live under bidui.v1.
    from bidui.v1 import comparison_pb2

    assert comparison_pb2.DESCRIPTOR.package == "bidui.v1"
    spec = importlib.util.find_spec("proto")
    assert spec is None or "bidui" not in (spec.origin or "")
