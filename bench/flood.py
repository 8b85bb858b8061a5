"""Flood benchmark: a department's latency while cert-less TLS and slow handshakes flood the node.

    .venv/bin/python bench/flood.py                        # issue 7: 1,100 + 50 peers (~3 minutes)
    .venv/bin/python bench/flood.py --connections 200 --slow 10 --seconds 3 --rounds 1  # quick
    .venv/bin/python bench/flood.py --json flood.json      # also write the results as JSON

The acceptance check of issue 7: "1,100 cert-less TLS connections held open, plus 50 slow
handshakes, leave a department's calls answered with p99 within 2x of idle and add 0 audit
records". What runs:

1. A provider node folder (``bench/_e2e_node.py``; N synthetic residents, both ``id_number``
   indexes; cached in ``.bench-cache/e2e-N``, shared with ``e2e.py``) and ``bidui provider serve``
   in its own process on a free loopback port, with a fresh SQLite audit log.
2. Idle: the department (``client_sdk.ComparisonClient`` with its certificate, one channel, as a
   department's service would hold it) makes sequential single-record comparisons for
   ``--seconds``, hashed and blinded in turn (so both modes meet the same moments of the flood),
   after ``--warmup`` seconds; every answer is checked. Then ``--connects`` new mTLS connections,
   each with one health check (what a department starting up meets).
3. The attacker (``bench/_flood_attacker.py``) starts in its own process: ``--connections``
   cert-less TLS peers (full handshake without a client certificate, ALPN h2, trusting the node's
   CA; each reconnects as soon as the node closes it) and ``--slow`` peers sending a real
   ClientHello one byte a second. Once all are in flight and every slow peer has been closed once
   (the node's handshake timeout), the same measurements as in 2 run under the flood. A phase
   spans several handshake timeouts: peers the node closes together come back together, in a
   wave every timeout, and a short phase would land on one wave or between two by chance. The
   slowest second's p99 shows what a wave costs while it lasts.
   2 and 3 repeat ``--rounds`` times (a new attacker each round); the percentiles are over all
   rounds' calls, so background load on a shared machine hits idle and flood alike.
4. The attacker stops; the audit records added between its start and its end are counted (a
   read-only SQLite connection) and split by requester, action, mode and outcome: they must be
   exactly the department's comparisons. /metrics before and after (the handshake-failure counter,
   if the node has it), the node's CPU, threads, RSS and descriptors (psutil), the growth of its
   output, and whether it still answers. The node is stopped and its audit chain verified.

Prints markdown tables with the targets of issue 7 marked met or MISSED; ``--json`` writes it all.
The attacker, the node and the department share this machine's cores: the CPU table shows who used
what (the attacker's TLS in Python costs more CPU than the node's refusals).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import psutil
from _e2e_node import Node, ServerProcess, prepare_node
from _e2e_report import machine_info
from _e2e_scenario import (
    KEY,
    PURPOSE,
    REPO,
    REQUESTER,
    RESOURCE,
    SDK_MODES,
    Queries,
    log,
    make_queries,
)
from _flood_probe import (
    HANDSHAKE_METRIC,
    AttackerProcess,
    Window,
    audit_counts,
    audit_difference,
    merge_attacker_rounds,
    merge_windows,
    scrape,
)
from _flood_report import render, targets
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client_sdk import BiduiError, ComparisonClient, Credentials

PHASES = ("idle", "flood")


Samples = tuple[list[float], Counter[str]]  # milliseconds of each call; failures by kind


def percentiles(samples: Samples) -> dict[str, Any]:
    values, failures = samples
    ordered = sorted(values)

    def nearest_rank(q: float) -> float:
        return ordered[max(1, min(len(ordered), math.ceil(q / 100 * len(ordered)))) - 1]

    return {
        "calls": len(values),
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "p50_ms": nearest_rank(50),
        "p95_ms": nearest_rank(95),
        "p99_ms": nearest_rank(99),
        "max_ms": ordered[-1],
        "mean_ms": sum(values) / len(values),
    }


def single_record_calls(
    client: ComparisonClient, queries: Queries, seconds: float, into: dict[str, Samples]
) -> dict[str, list[tuple[float, float]]]:
    """One ``compare()`` of one record at a time for ``seconds``, hashed and blinded in turn, so
    both modes meet the same moments of a flood; every answer is checked and a failed call counts
    with its time. Returns each mode's (seconds since the start, milliseconds) per call."""
    timeline: dict[str, list[tuple[float, float]]] = {mode: [] for mode in SDK_MODES}
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        mode = SDK_MODES[n % len(SDK_MODES)]
        i = n // len(SDK_MODES) % len(queries.records)  # each record in both modes
        record, expected = queries.records[i], queries.present[i]
        n += 1
        t0 = time.perf_counter()
        try:
            result = client.compare(RESOURCE, [record], key=KEY, mode=mode, purpose=PURPOSE)
        except BiduiError as problem:
            into[mode][1][type(problem).__name__] += 1
        else:
            if result[0].is_error or result[0].is_match != expected:
                sys.exit(f"{mode} {record}: wrong answer {result[0].status}")
        taken = (time.perf_counter() - t0) * 1000
        into[mode][0].append(taken)
        timeline[mode].append((t0 - start, taken))
    return timeline


def slowest_second(timeline: list[tuple[float, float]]) -> float:
    """The highest p99 of the calls started within one whole second of a phase: what a burst
    (a wave of reconnecting peers) costs while it lasts, which a p99 over the phase can dilute."""
    by_second: dict[int, list[float]] = defaultdict(list)
    for at, taken in timeline:
        by_second[int(at)].append(taken)
    return max(percentiles((v, Counter()))["p99_ms"] for v in by_second.values())


def new_connections(target: str, credentials: Credentials, count: int, into: Samples) -> None:
    """A new mTLS connection (its own subchannel) and one health check, ``count`` times."""
    for _ in range(count):
        t0 = time.perf_counter()
        options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own
        channel = grpc.secure_channel(target, credentials.channel_credentials(), options=options)
        try:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=30, wait_for_ready=True)
        except grpc.RpcError as problem:
            into[1][str(problem.code())] += 1
        finally:
            channel.close()
        into[0].append((time.perf_counter() - t0) * 1000)


def audit_check(added: dict[str, int], calls: dict[str, int]) -> dict[str, Any]:
    """The records added during the flood against the department's comparisons in it.

    Each comparison is one ``answered`` record; a blinded one is also one ``opened`` record if
    the node writes its first step to the log. Health checks are not audited."""
    expected = {f"{REQUESTER}|comparison|{mode}|answered": n for mode, n in calls.items()}
    opened = f"{REQUESTER}|comparison|blinded|opened"
    if opened in added:
        expected[opened] = calls["blinded"]
    keys = sorted(set(added) | set(expected))
    return {
        "department_calls": sum(calls.values()),
        "expected": sum(expected.values()),
        "added": sum(added.values()),
        "attacker_records": sum(n for k, n in added.items() if k.split("|")[0] != REQUESTER),
        "unexpected": {
            k: added.get(k, 0) - expected.get(k, 0)
            for k in keys
            if added.get(k, 0) != expected.get(k, 0)
        },
        "by_kind": added,
    }


def serving(target: str, credentials: Credentials) -> str:
    samples: Samples = ([], Counter())
    new_connections(target, credentials, 1, samples)
    return "yes" if not samples[1] else f"no ({dict(samples[1])})"


class LogTail:
    """What the node wrote to stdout/stderr from ``mark`` to ``read``, summed over windows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.totals: Counter[str] = Counter()
        self.summaries: list[str] = []  # the operations log's "... TLS handshakes refused ..."

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def read(self) -> None:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            lines = f.read().splitlines()
        self.totals["bytes"] += sum(len(line) + 1 for line in lines)
        self.totals["lines"] += len(lines)
        self.totals["grpc_handshake_lines"] += sum(
            b"andshake failed" in line or b"andshake timed out" in line for line in lines
        )
        self.summaries += [
            line.decode(errors="replace") for line in lines if b"TLS handshakes refused" in line
        ]


class FloodRun:
    """One node, one department client, ``rounds`` of (idle, flood) measurements."""

    def __init__(self, args: argparse.Namespace, server: ServerProcess, node: Node) -> None:
        self.args, self.server, self.node = args, server, node
        self.credentials = Credentials.from_files(node.ca_cert, node.client_cert, node.client_key)
        self.calls: dict[str, dict[str, Samples]] = {
            p: {m: ([], Counter()) for m in SDK_MODES} for p in PHASES
        }
        self.p99_rounds: dict[str, dict[str, list[float]]] = {
            p: {m: [] for m in SDK_MODES} for p in PHASES
        }
        self.slowest_seconds: dict[str, dict[str, list[float]]] = {
            p: {m: [] for m in SDK_MODES} for p in PHASES
        }
        self.connects: dict[str, Samples] = {p: ([], Counter()) for p in PHASES}
        self.windows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.attacker_rounds: list[dict[str, Any]] = []
        self.audit_added: Counter[str] = Counter()
        self.flood_calls: Counter[str] = Counter()
        self.log = LogTail(server.log_path)
        self.attacker: AttackerProcess | None = None
        self._node_process = psutil.Process(server.process.pid)

    def measure(self, client: ComparisonClient, phase: str, queries: Queries) -> None:
        node_window, my_window = Window(self._node_process), Window(psutil.Process())
        samples: dict[str, Samples] = {mode: ([], Counter()) for mode in SDK_MODES}
        timeline = single_record_calls(client, queries, self.args.seconds, samples)
        for mode in SDK_MODES:
            r = percentiles(samples[mode])
            self.p99_rounds[phase][mode].append(r["p99_ms"])
            self.slowest_seconds[phase][mode].append(slowest_second(timeline[mode]))
            self.calls[phase][mode][0].extend(samples[mode][0])
            self.calls[phase][mode][1].update(samples[mode][1])
            if phase == "flood":
                self.flood_calls[mode] += len(samples[mode][0])
            slowest = self.slowest_seconds[phase][mode][-1]
            log(f"  {phase} {mode}: {r['calls']:,} calls, p50 {r['p50_ms']:.2f} ms,"
                f" p99 {r['p99_ms']:.2f} ms, slowest second's p99 {slowest:.2f} ms,"
                f" {r['failed']} failed")  # fmt: skip
        new_connections(
            self.server.target, self.credentials, self.args.connects, self.connects[phase]
        )
        self.windows[f"node_{phase}"].append(node_window.finish())
        self.windows[f"department (bench)_{phase}"].append(my_window.finish())

    def flood(self, client: ComparisonClient, queries: Queries, audit_db: Path) -> None:
        args = self.args
        before = audit_counts(audit_db)
        self.log.mark()
        log(f"attacker: {args.connections:,} cert-less TLS + {args.slow} slow handshakes")
        self.attacker = attacker = AttackerProcess(
            self.server.port, self.node.ca_cert, args.connections, args.slow,
            nice=args.attacker_nice, stall=args.stall,
        )  # fmt: skip
        ramp = attacker.wait_ramped(args.ramp_timeout)
        log(f"  ramped up in {ramp:.1f} s: {attacker.latest()}")
        attacker_window = Window(attacker.psutil)
        start = time.monotonic()
        self.measure(client, "flood", queries)
        summary = attacker.summary(start, time.monotonic())
        self.windows["attacker_flood"].append(attacker_window.finish())
        self.attacker_rounds.append({**attacker.stop(), "window": summary, "ramp_seconds": ramp})
        self.attacker = None
        time.sleep(1.0)  # the node closes what the attacker left
        self.audit_added.update(audit_difference(before, audit_counts(audit_db)))
        self.log.read()

    def run(self, queries: Queries, audit_db: Path) -> dict[str, Any]:
        with ComparisonClient(self.server.target, self.credentials) as client:
            warm: dict[str, Samples] = {mode: ([], Counter()) for mode in SDK_MODES}
            single_record_calls(client, queries, self.args.warmup, warm)
            for n in range(self.args.rounds):
                log(f"round {n + 1} of {self.args.rounds}")
                self.measure(client, "idle", queries)
                self.flood(client, queries, audit_db)
        results: dict[str, Any] = {}
        for phase in PHASES:
            results[phase] = {
                mode: {
                    **percentiles(self.calls[phase][mode]),
                    "p99_ms_rounds": self.p99_rounds[phase][mode],
                    "slowest_second_p99_ms": max(self.slowest_seconds[phase][mode]),
                }
                for mode in SDK_MODES
            }
            results[f"connect_{phase}"] = percentiles(self.connects[phase])
        results["processes"] = {k: merge_windows(v) for k, v in self.windows.items()}
        results["attacker"] = merge_attacker_rounds(self.attacker_rounds)
        results["audit"] = audit_check(dict(self.audit_added), dict(self.flood_calls))
        results["serve_log"] = {**self.log.totals, "summaries": self.log.summaries[-3:]}
        results["serving_after"] = serving(self.server.target, self.credentials)
        return results

    def close(self) -> None:
        if self.attacker is not None:
            self.attacker.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="provider records")
    parser.add_argument("--connections", type=int, default=1100, help="cert-less TLS peers")
    parser.add_argument("--slow", type=int, default=50, help="slow-handshake peers")
    parser.add_argument(
        "--stall",
        action="store_true",
        help="the cert-less peers send their ClientHello and hold the connection open until the "
        "node's handshake timeout, instead of completing their side and reconnecting at once",
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0,
        help="seconds of single-record calls per phase (the default spans four of the node's"
        " 5 s handshake timeouts, so waves of reconnecting peers fall in it as they come)",
    )  # fmt: skip
    parser.add_argument("--queries", type=int, default=2000, help="records the calls cycle over")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (idle, flood)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up calls")
    parser.add_argument("--connects", type=int, default=20, help="new connections per phase")
    parser.add_argument("--ramp-timeout", type=float, default=60.0, help="seconds for the flood")
    parser.add_argument(
        "--attacker-nice", type=int, default=0,
        help="niceness of the attacker process (diagnostic: 19 lets the node and the department"
        " go first on a shared machine; the issue-7 check uses 0)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=2017, help="seed of the synthetic data")
    parser.add_argument(
        "--workdir", type=Path, help="node folder, reused when present (default .bench-cache/e2e-N)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    args = parser.parse_args(argv)
    if min(args.seconds, args.warmup) <= 0 or min(args.queries, args.connects, args.rounds) < 1:
        parser.error("--seconds, --warmup, --queries, --connects, --rounds must be > 0")
    if args.n < 2 * args.queries:
        parser.error("--n must be at least 2 x --queries (half the queries are present)")
    if min(args.connections, args.slow) < 0:
        parser.error("--connections and --slow must be >= 0")

    workdir = (args.workdir or REPO / ".bench-cache" / f"e2e-{args.n}").absolute()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "parameters": {k: v for k, v in vars(args).items() if k not in ("workdir", "json")},
    }
    node = prepare_node(workdir, args.n, args.seed)
    server_ids = node.server_items.read_text(encoding="utf-8").split()
    queries = make_queries(server_ids, args.queries, args.seed + 300)
    del server_ids

    with tempfile.TemporaryDirectory(prefix="bidui-flood-") as scratch_name:
        scratch = Path(scratch_name)
        server = ServerProcess(node, scratch)
        run: FloodRun | None = None
        try:
            log(f"starting `bidui provider serve` on {server.target}")
            run = FloodRun(args, server, node)
            server.wait_serving(run.credentials, timeout=600)
            metrics_before = scrape(server.metrics_port)
            results.update(run.run(queries, scratch / "audit.db"))
            metrics_after = scrape(server.metrics_port)
        finally:
            if run is not None:
                run.close()
            code = server.stop()
        if code != 0:
            sys.exit(f"the node exited with code {code}; see {server.log_path}")
        results["audit_verify"] = server.verify_audit()

    results["metrics"] = {
        "before": metrics_before,
        "after": metrics_after,
        "handshake_failures_added": {
            name: value - metrics_before["series"].get(name, 0.0)
            for name, value in metrics_after["series"].items()
            if name.startswith(HANDSHAKE_METRIC)
        },
    }
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = targets(results)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
