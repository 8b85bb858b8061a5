"""OpenMined PSI baseline for bench/e2e.py: runs inside its own venv (``.bench-venv/``).

    .bench-venv/bin/python bench/psi_baseline.py --server-items S.txt --client-items C.txt

openmined-psi 2.0.6 pins an older protobuf than the project's, so this script imports nothing
from the project and runs in ``.bench-venv`` (``bench/e2e.py`` creates it). Items are read one per
line. The server's setup message for all its items is built once, untimed (its serialized size is
reported: the client downloads it). Each timed run is what a comparison costs: client
``CreateRequest`` over the client items, server ``ProcessRequest``, client ``GetIntersection``,
with the request and the response serialized and parsed as on the wire (no network).
Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def _read_items(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-items", type=Path, required=True, help="one item per line")
    parser.add_argument("--client-items", type=Path, required=True, help="one item per line")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument(
        "--fpr", type=float, default=1e-9, help="false-positive rate for the whole client set"
    )
    parser.add_argument("--expected", type=int, default=-1, help="expected intersection size")
    args = parser.parse_args(argv)

    import private_set_intersection.python as psi  # type: ignore[import-not-found]  # .bench-venv

    server_items = _read_items(args.server_items)
    client_items = _read_items(args.client_items)
    m = len(client_items)

    server = psi.server.CreateWithNewKey(True)  # reveal the intersection, as bidui does
    t0 = time.perf_counter()
    setup = server.CreateSetupMessage(args.fpr, m, server_items, psi.DataStructure.GCS)
    setup_seconds = time.perf_counter() - t0
    setup_bytes = len(setup.SerializeToString())

    seconds: list[float] = []
    cpu_seconds: list[float] = []
    request_bytes = response_bytes = intersection = 0
    for _ in range(args.runs):
        client = psi.client.CreateWithNewKey(True)
        t0, c0 = time.perf_counter(), time.process_time()
        # Each message is serialized and parsed, as it would cross the wire (no network here).
        request_wire = client.CreateRequest(client_items).SerializeToString()
        request = psi.Request()
        request.ParseFromString(request_wire)
        response_wire = server.ProcessRequest(request).SerializeToString()
        response = psi.Response()
        response.ParseFromString(response_wire)
        found = client.GetIntersection(setup, response)
        seconds.append(time.perf_counter() - t0)
        cpu_seconds.append(time.process_time() - c0)
        request_bytes, response_bytes = len(request_wire), len(response_wire)
        intersection = len(found)
        if args.expected >= 0 and intersection != args.expected:
            sys.exit(f"PSI found {intersection} items in common, expected {args.expected}")

    result: dict[str, Any] = {
        "library": f"openmined-psi {metadata.version('openmined-psi')}",
        "n": len(server_items),
        "m": m,
        "fpr": args.fpr,
        "data_structure": "GCS",
        "setup_seconds": setup_seconds,
        "setup_bytes": setup_bytes,
        "request_bytes": request_bytes,
        "response_bytes": response_bytes,
        "intersection": intersection,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # all threads of the process: cores used = cpu / wall
        "items_per_second": m / statistics.median(seconds),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
