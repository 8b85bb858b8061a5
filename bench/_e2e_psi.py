"""The OpenMined PSI baseline of the end-to-end benchmark, run in a venv of its own.

openmined-psi pins an older protobuf than bidui's, so ``psi_baseline.py`` runs in ``.bench-venv``
(created on first use) over the node's N server items and the blinded run's M client items, and
answers in JSON on its standard output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _e2e_node import Node
from _e2e_scenario import KEY, REPO, Queries, log

PSI_VERSION = "2.0.6"


def ensure_psi_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import private_set_intersection.python"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    log(f"creating {venv} with openmined-psi=={PSI_VERSION} (its protobuf pin clashes with ours)")
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"openmined-psi=={PSI_VERSION}"], check=True
    )
    return python


def run_psi(node: Node, queries: Queries, runs: int, venv: Path, scratch: Path) -> dict[str, Any]:
    python = ensure_psi_venv(venv)
    client_items = scratch / "psi_client_items.txt"
    client_items.write_text("\n".join(r[KEY] for r in queries.records) + "\n", encoding="utf-8")
    done = subprocess.run(
        [
            str(python), str(REPO / "bench" / "psi_baseline.py"),
            "--server-items", str(node.server_items), "--client-items", str(client_items),
            "--runs", str(runs), "--expected", str(queries.expected_matches),
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"psi_baseline.py failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
