"""Node capacity with worker processes: 1 and 2 workers, 1, 2 and 4 requester processes.

    .venv/bin/python bench/workers.py                     # N = 1M (a few minutes; idle machine)
    .venv/bin/python bench/workers.py --n 20000 --m-hashed 5000 --m-blinded 500 --calls 2 \\
        --runs 1                                          # a smoke run (under a minute)
    .venv/bin/python bench/workers.py --json workers.json # also write the results as JSON

What runs:

1. The node of ``bench/e2e.py`` (``--workdir``, default ``.bench-cache/e2e-N``, shared with it
   and reused when present): N synthetic residents, the hashed and blinded ``id_number`` indexes.
2. For W in 1, 2: ``bidui provider serve --workers W`` (a fresh SQLite audit log, the per-minute
   item limits lifted), then for each mode (hashed, blinded) and R in 1, 2, 4: R requester
   processes (spawned: each its own interpreter) start together at a barrier and each makes
   ``--calls`` comparisons of its own M records through ``client_sdk``, a new connection per
   call, every answer checked. Throughput is all items over the time until the last requester
   finished (median of ``--runs``); node CPU per item is the supervisor's and workers' CPU time
   over the items; the items each worker answered come from its own ``/metrics``.
3. The memory of each worker (RSS, USS, PSS), the node stopped (exit 0 required) and its audit
   chain verified.
4. One index file mapped and read in by 2 fresh processes: its bytes per record (RSS, USS, PSS).

Prints markdown tables with the machine, the sizes and the date.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from _e2e_node import prepare_node
from _e2e_report import machine_info
from _e2e_scenario import REPO, SDK_MODES, Queries, log, make_queries
from _workers_memory import index_memory
from _workers_node import WorkersNode
from _workers_report import render
from _workers_requester import run_requester

from client_sdk.client import ComparisonMode as SdkMode

WORKERS = (1, 2)
REQUESTERS = (1, 2, 4)


def _cell(
    node: WorkersNode,
    pki: tuple[Path, Path, Path],
    mode: SdkMode,
    queries: list[Queries],
    calls: int,
) -> dict[str, Any]:
    """One run: ``len(queries)`` requester processes at once, each over its own queries."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(queries) + 1)
    results: Queue[dict[str, Any]] = context.Queue()
    processes = [
        context.Process(
            target=run_requester, args=(node.target, pki, mode, q, calls, barrier, results)
        )
        for q in queries
    ]
    for process in processes:
        process.start()
    barrier.wait(timeout=600)  # every requester is warmed up
    started, cpu, items = time.monotonic(), node.cpu_seconds(), node.items_per_worker()
    done = [results.get(timeout=3600) for _ in processes]
    node_cpu = node.cpu_seconds() - cpu
    per_worker = [b - a for a, b in zip(items, node.items_per_worker(), strict=True)]
    for process in processes:
        process.join(60)
        if process.exitcode != 0:
            sys.exit(f"a requester failed (exit code {process.exitcode})")
    total = sum(d["items"] for d in done)
    seconds = max(d["ended"] for d in done) - started
    return {
        "items": total,
        "seconds": seconds,
        "items_per_second": total / seconds,
        "node_cpu_us_per_item": node_cpu / total * 1e6,
        "requester_cpu_us_per_item": sum(d["cpu_seconds"] for d in done) / total * 1e6,
        "node_cores_busy": node_cpu / seconds,
        "worker_share": [w / sum(per_worker) for w in per_worker] if sum(per_worker) else [],
    }


def _measure_node(
    node: WorkersNode,
    pki: tuple[Path, Path, Path],
    queries: dict[str, list[Queries]],
    calls: int,
    runs: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in SDK_MODES:
        for requesters in REQUESTERS:
            cells = []
            for run in range(runs):
                cells.append(_cell(node, pki, mode, queries[mode][:requesters], calls))
                log(
                    f"  {node.workers} worker(s), {mode}, {requesters} requester(s), run "
                    f"{run + 1}: {cells[-1]['items_per_second']:,.0f} items/s"
                )
            cells.sort(key=lambda c: c["items_per_second"])
            middle = cells[len(cells) // 2]  # the median run (of an odd number)
            runs_seen = [c["items_per_second"] for c in cells]
            out[f"{mode}/{requesters}"] = {**middle, "items_per_second_runs": runs_seen}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="provider records")
    parser.add_argument("--m-hashed", type=int, default=50_000, help="records per hashed call")
    parser.add_argument("--m-blinded", type=int, default=2_000, help="records per blinded call")
    parser.add_argument("--calls", type=int, default=3, help="calls per requester and run")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--seed", type=int, default=2017, help="seed of the synthetic data")
    parser.add_argument(
        "--workdir", type=Path, help="node folder, reused when present (default .bench-cache/e2e-N)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.n < 2 or min(args.m_hashed, args.m_blinded, args.calls, args.runs) < 1:
        parser.error("--n must be >= 2 and the other sizes >= 1")
    if max(args.m_hashed, args.m_blinded) * max(REQUESTERS) // 2 > args.n:
        parser.error("half of M times 4 requesters must not exceed N")

    workdir = (args.workdir or REPO / ".bench-cache" / f"e2e-{args.n}").absolute()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "parameters": {
            "n": args.n,
            "m_hashed": args.m_hashed,
            "m_blinded": args.m_blinded,
            "calls": args.calls,
            "runs": args.runs,
            "seed": args.seed,
            "workers": list(WORKERS),
            "requesters": list(REQUESTERS),
        },
        "nodes": {},
    }
    node_dir = prepare_node(workdir, args.n, args.seed)
    server_ids = node_dir.server_items.read_text(encoding="utf-8").split()
    sizes = {"hashed": args.m_hashed, "blinded": args.m_blinded}
    queries = {
        mode: [
            make_queries(server_ids, sizes[mode], args.seed + 300 + 10 * i + (mode == "blinded"))
            for i in range(max(REQUESTERS))
        ]
        for mode in SDK_MODES
    }
    del server_ids
    pki = (node_dir.ca_cert, node_dir.client_cert, node_dir.client_key)
    with tempfile.TemporaryDirectory(prefix="bidui-workers-") as scratch_name:
        for workers in WORKERS:
            node = WorkersNode(node_dir.config_path, workers, Path(scratch_name))
            try:
                log(f"starting `bidui provider serve --workers {workers}` on {node.target}")
                startup = node.wait_serving(timeout=600)
                log(f"  serving after {startup:.1f} s")
                measured = _measure_node(node, pki, queries, args.calls, args.runs)
                measured["startup_seconds"] = startup
                measured["memory"] = node.memory()
            finally:
                node.stop()
            measured["audit"] = node.verify_audit()
            results["nodes"][str(workers)] = measured
    index_file = node_dir.config_path.parent / "data" / "indexes" / "residents"
    log("index memory: 2 processes mapping / reading in the hashed index")
    results["index_memory"] = index_memory(index_file / "id_number.hashed.idx")
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
