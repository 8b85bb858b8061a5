"""End-to-end benchmark: SDK -> real node over mutual TLS gRPC, audit on; OpenMined PSI baseline.

    .venv/bin/python bench/e2e.py                         # N = 1M, defaults of issue 3 (minutes)
    .venv/bin/python bench/e2e.py --n 20000 --m-blinded 2000 --m-hashed 20000 \\
        --latency-calls 100 --sporadic-calls 20 --runs 1  # a quick check
    .venv/bin/python bench/e2e.py --json results.json     # also write the results as JSON

What runs:

1. A provider node in ``--workdir`` (default ``.bench-cache/e2e-N``; reused when present): keys, a
   development PKI, a SQLite source table of N synthetic Luzhou residents (valid 18-digit resident
   ID numbers), and the ``id_number`` match indexes built with ``provider_node.resources.loader``
   (the build
   time per mode is reported: it is the index-build throughput at N).
2. ``bidui provider serve`` in a subprocess (its own GIL, as deployed) on a free loopback port, with
   its audit log in a fresh SQLite database in a temporary folder; the benchmark waits for the
   health service to report SERVING.
3. Through ``client_sdk.ComparisonClient`` (mTLS): blinded mode over M_blinded records, in RFC 9497
   modeOPRF (the default) and in modeVOPRF (``verifiable=True``), and hashed mode over M_hashed
   records (half present, half absent; every answer is checked), then
   single-record latency over ``--latency-calls`` sequential ``compare()`` calls per mode, and
   over ``--sporadic-calls`` more with ``--sporadic-pause`` seconds idle before each (what a
   clerk's occasional lookups meet: both processes' threads asleep).
4. The node is stopped and its audit chain verified (``bidui audit verify``).
5. OpenMined PSI (``bench/psi_baseline.py`` in ``.bench-venv``, created when missing) over the same
   N server items and the same M_blinded client items as the blinded run.

Prints a markdown table with the targets of issue 3 marked met or MISSED. Throughputs are the
median over ``--runs`` runs; latencies are the median over runs of each run's p50 and p99.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _e2e_measure import latency, throughput
from _e2e_node import ServerProcess, prepare_node
from _e2e_psi import run_psi
from _e2e_report import machine_info, render, targets
from _e2e_scenario import (
    KEY,
    PURPOSE,
    REPO,
    RESOURCE,
    SDK_MODES,
    Queries,
    check_result,
    log,
    make_queries,
)

from client_sdk import ComparisonClient, Credentials


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="provider records")
    parser.add_argument("--m-blinded", type=int, default=10_000, help="records, blinded run")
    parser.add_argument("--m-hashed", type=int, default=100_000, help="records, hashed run")
    parser.add_argument("--latency-calls", type=int, default=1000, help="single-record calls")
    parser.add_argument(
        "--sporadic-calls", type=int, default=100,
        help="single-record calls, each after --sporadic-pause seconds idle (a clerk's lookups)",
    )  # fmt: skip
    parser.add_argument("--sporadic-pause", type=float, default=0.2, help="seconds between them")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--skip-psi", action="store_true", help="leave out the PSI baseline")
    parser.add_argument("--seed", type=int, default=2017, help="seed of the synthetic data")
    parser.add_argument(
        "--workdir", type=Path, help="node folder, reused when present (default .bench-cache/e2e-N)"
    )
    parser.add_argument(
        "--psi-venv", type=Path, default=REPO / ".bench-venv", help="venv for openmined-psi"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.sporadic_calls < 1 or args.sporadic_pause < 0:
        parser.error("--sporadic-calls must be >= 1 and --sporadic-pause >= 0")
    if args.n < 2 or min(args.m_blinded, args.m_hashed, args.latency_calls, args.runs) < 1:
        parser.error("--n must be >= 2 and the other sizes >= 1")
    if max(args.m_blinded, args.m_hashed) // 2 > args.n:
        parser.error("half of M must not exceed N")

    workdir = (args.workdir or REPO / ".bench-cache" / f"e2e-{args.n}").absolute()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "parameters": {
            "n": args.n,
            "m_blinded": args.m_blinded,
            "m_hashed": args.m_hashed,
            "latency_calls": args.latency_calls,
            "runs": args.runs,
            "seed": args.seed,
            "max_batch": 0,
        },
    }
    node = prepare_node(workdir, args.n, args.seed)
    results["build"], results["build_cached"] = node.build, node.cached
    server_ids = node.server_items.read_text(encoding="utf-8").split()
    blinded_queries = make_queries(server_ids, args.m_blinded, args.seed + 100)
    hashed_queries = make_queries(server_ids, args.m_hashed, args.seed + 200)
    del server_ids

    credentials = Credentials.from_files(node.ca_cert, node.client_cert, node.client_key)
    with tempfile.TemporaryDirectory(prefix="bidui-e2e-") as scratch_name:
        scratch = Path(scratch_name)
        server = ServerProcess(node, scratch)
        try:
            log(f"starting `bidui provider serve` on {server.target}")
            results["startup_seconds"] = server.wait_serving(credentials, timeout=600)
            log(f"  SERVING after {results['startup_seconds']:.1f} s")
            with ComparisonClient(server.target, credentials) as client:
                results["parameters"]["max_batch"] = client.max_batch
                warm_up = Queries(blinded_queries.records[:100], blinded_queries.present[:100])
                for mode in SDK_MODES:  # the connection, the SDK's cached catalog
                    check_result(
                        client.compare(
                            RESOURCE, warm_up.records, key=KEY, mode=mode, purpose=PURPOSE
                        ),
                        warm_up,
                        f"{mode} warm-up",
                    )
                log(f"blinded (modeOPRF): {args.m_blinded:,} records x {args.runs}")
                results["blinded"] = throughput(
                    client, server, "blinded", blinded_queries, args.runs
                )
                log(f"blinded (modeVOPRF): {args.m_blinded:,} records x {args.runs}")
                results["blinded_voprf"] = throughput(
                    client, server, "blinded", blinded_queries, args.runs, verifiable=True
                )
                log(f"hashed: {args.m_hashed:,} records x {args.runs}")
                results["hashed"] = throughput(client, server, "hashed", hashed_queries, args.runs)
                for mode in SDK_MODES:
                    log(f"{mode}: {args.latency_calls:,} single-record calls x {args.runs}")
                    results[f"latency_{mode}"] = latency(
                        client, server, mode, blinded_queries, args.latency_calls, args.runs
                    )
                    log(f"{mode}: {args.sporadic_calls:,} single-record calls, each after"
                        f" {args.sporadic_pause:g} s idle")  # fmt: skip
                    results[f"sporadic_{mode}"] = latency(
                        client, server, mode, blinded_queries, args.sporadic_calls, 1,
                        pause=args.sporadic_pause,
                    )  # fmt: skip
        finally:
            code = server.stop()
        if code != 0:
            sys.exit(f"the node exited with code {code}; see the log above")
        results["audit"] = server.verify_audit()
        results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if not args.skip_psi:
            log(f"OpenMined PSI: N = {args.n:,}, M = {args.m_blinded:,} x {args.runs}")
            results["psi"] = run_psi(node, blinded_queries, args.runs, args.psi_venv, scratch)
            log(f"  {results['psi']['items_per_second']:,.0f} items/s")
    results["targets"] = targets(results)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
