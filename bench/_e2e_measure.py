"""What the end-to-end benchmark measures: throughput of whole comparisons, single-record
latency, and where the time of one ``compare()`` goes (RPCs and the node's handler time)."""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _e2e_node import ServerProcess
from _e2e_scenario import KEY, PURPOSE, RESOURCE, Queries, check_result, log

from client_sdk import ComparisonClient
from client_sdk.client import ComparisonMode as SdkMode

Counters = dict[str, tuple[float, float]]


def rpc_breakdown(before: Counters, after: Counters, compares: int) -> dict[str, Any]:
    """RPCs per ``compare()`` by method, and the node's handler time per ``compare()``.

    From the node's ``bidui_rpc_duration_seconds`` histogram (time inside the gRPC handler: not
    TLS, the network or the client)."""
    per_method: dict[str, dict[str, float]] = {}
    for method, (count, total) in after.items():
        calls = count - before.get(method, (0.0, 0.0))[0]
        if calls > 0:
            seconds = total - before.get(method, (0.0, 0.0))[1]
            per_method[method] = {
                "per_compare": calls / compares,
                "mean_ms": seconds / calls * 1000,
            }
    handler_ms = sum(m["per_compare"] * m["mean_ms"] for m in per_method.values())
    return {"methods": per_method, "node_handler_ms_per_compare": handler_ms}


def throughput(
    client: ComparisonClient,
    server: ServerProcess,
    mode: SdkMode,
    queries: Queries,
    runs: int,
    *,
    verifiable: bool = False,
) -> dict[str, Any]:
    """``runs`` calls of ``compare()`` over all of ``queries``; checks every answer.
    ``verifiable``: blinded mode in RFC 9497 modeVOPRF (default modeOPRF)."""
    label = f"{mode}{' (VOPRF)' if verifiable else ''}"
    m = len(queries.records)
    seconds: list[float] = []
    client_cpu = node_cpu = 0.0
    requests = 0
    before = server.rpc_counters()
    for run in range(runs):
        t0, c0, n0 = time.perf_counter(), time.process_time(), server.cpu_seconds()
        result = client.compare(
            RESOURCE, queries.records, key=KEY, mode=mode, purpose=PURPOSE, verifiable=verifiable
        )
        seconds.append(time.perf_counter() - t0)
        client_cpu += time.process_time() - c0
        node_cpu += server.cpu_seconds() - n0
        check_result(result, queries, f"{label} run {run + 1}")
        requests = len(result.comparison_ids)
        log(f"  {label} run {run + 1}: {len(queries.records) / seconds[-1]:,.0f} items/s")
    rpcs = rpc_breakdown(before, server.rpc_counters(), runs)
    return {
        "m": m,
        "seconds": seconds,
        "items_per_second": m / statistics.median(seconds),
        "ms_per_compare": statistics.median(seconds) * 1000,
        "chunks": requests,
        # CPU per item over all runs, client and node processes (all their threads)
        "client_cpu_us_per_item": client_cpu / (runs * m) * 1e6,
        "node_cpu_us_per_item": node_cpu / (runs * m) * 1e6,
        "cores_busy": (client_cpu + node_cpu) / sum(seconds),
        "matches": queries.expected_matches,
        "rpcs": rpcs,
    }


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def _latencies(call: Callable[[int], None], calls: int, pause: float = 0.0) -> list[float]:
    out: list[float] = []
    for i in range(calls):
        t0 = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(pause)
    return sorted(out)


def latency(
    client: ComparisonClient,
    server: ServerProcess,
    mode: SdkMode,
    queries: Queries,
    calls: int,
    runs: int,
    pause: float = 0.0,
) -> dict[str, Any]:
    """Sequential ``compare()`` calls of one record each, present and absent records mixed;
    ``pause`` seconds between calls leave both processes idle before each, as a clerk's lookups
    do (threads asleep, caches cold)."""
    records, present = queries.records, queries.present

    def one(i: int) -> None:
        j = i % len(records)
        result = client.compare(RESOURCE, [records[j]], key=KEY, mode=mode, purpose=PURPOSE)
        if result[0].is_match != present[j] or result[0].is_error:
            sys.exit(f"{mode} single record {j}: wrong answer {result[0].status}")

    _latencies(one, 10)  # warm-up: the connection, the SDK's cached catalog entry and key
    before = server.rpc_counters()
    p50s, p99s, means, maxes = [], [], [], []
    for run in range(runs):
        values = _latencies(one, calls, pause)
        p50s.append(_percentile(values, 50))
        p99s.append(_percentile(values, 99))
        means.append(statistics.fmean(values))
        maxes.append(values[-1])
        log(f"  {mode} single record run {run + 1} (pause {pause:g} s): p50 {p50s[-1]:.2f} ms,"
            f" p99 {p99s[-1]:.2f} ms")  # fmt: skip
    return {
        "calls": calls,
        "pause_s": pause,
        "p50_ms": statistics.median(p50s),
        "p99_ms": statistics.median(p99s),
        "mean_ms": statistics.median(means),
        "max_ms": max(maxes),
        "p50_ms_runs": p50s,
        "p99_ms_runs": p99s,
        "rpcs": rpc_breakdown(before, server.rpc_counters(), calls * runs),
    }
