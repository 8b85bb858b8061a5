"""Benchmark comparator.oprf (RFC 9497, ristretto255-SHA512): items per second for each step.

    .venv/bin/python bench/bench_oprf.py                      # sizes 1k and 100k, median of 3
    .venv/bin/python bench/bench_oprf.py --sizes 1000 --runs 5

Prints a markdown table to stdout: blind, blind_evaluate, finalize and end to end (the three in a
row, no network) for OPRF and VOPRF, and evaluate_batch (the provider's index build). Verifiable
batches above MAX_VERIFIABLE_BATCH items (one proof covers at most 2^16) are sent as equal chunks,
as the node and SDK do; the table says so.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from _machine import cpu_model  # bench/_machine.py, beside this script

from comparator import group
from comparator.oprf import (
    MAX_VERIFIABLE_BATCH,
    Evaluation,
    Mode,
    OprfClient,
    OprfServer,
    VoprfClient,
    VoprfServer,
    generate_key_pair,
)
from comparator.oprf import parallel as _parallel


def _chunks(items: list[bytes], limit: int) -> list[list[bytes]]:
    parts = -(-len(items) // limit)
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run_protocol(mode: Mode, inputs: list[bytes]) -> tuple[float, float, float]:
    """Seconds for blind, blind_evaluate, finalize of all inputs (chunked in verifiable modes)."""
    sk, pk = generate_key_pair(mode)
    client: Any
    server: Any
    if mode == Mode.OPRF:
        client, server, limit = OprfClient(), OprfServer(sk), len(inputs)
    else:
        client, server, limit = VoprfClient(pk), VoprfServer(sk), MAX_VERIFIABLE_BATCH
    t_blind = t_eval = t_fin = 0.0
    outputs: list[bytes] = []
    for chunk in _chunks(inputs, limit):
        t0 = time.perf_counter()
        blinded = client.blind(chunk)
        t1 = time.perf_counter()
        evaluation = server.blind_evaluate(blinded.message)
        t2 = time.perf_counter()
        outputs.extend(client.finalize(blinded.state, evaluation))
        t3 = time.perf_counter()
        t_blind, t_eval, t_fin = t_blind + t1 - t0, t_eval + t2 - t1, t_fin + t3 - t2
    assert isinstance(evaluation, Evaluation) and len(outputs) == len(inputs)
    return t_blind, t_eval, t_fin


def run_evaluate_batch(inputs: list[bytes]) -> float:
    server = OprfServer(generate_key_pair(Mode.OPRF)[0])
    dt, _ = _timed(lambda: server.evaluate_batch(inputs))
    return dt


def _rate(n: int, seconds: Sequence[float]) -> str:
    return f"{statistics.median(n / s for s in seconds):,.0f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--runs", type=int, default=3, help="runs per size (median reported)")
    parser.add_argument("--workers", type=int, default=None, help="worker threads (default: auto)")
    args = parser.parse_args(argv)
    if args.workers:
        _parallel.set_workers(args.workers)

    print("## comparator.oprf benchmark (RFC 9497, ristretto255-SHA512, no network)\n")
    print(f"- date: {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores ({platform.system()})")
    print(f"- Python {platform.python_version()}, libsodium {group.libsodium_version()}, "
          f"pysodium {metadata.version('pysodium')}")  # fmt: skip
    print(f"- worker threads: {_parallel.workers()}; median of {args.runs} runs; items/s\n")
    print("| mode | items | blind | blind_evaluate | finalize | end to end |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    notes = []
    for n in args.sizes:
        inputs = [os.urandom(24) for _ in range(n)]
        for mode in (Mode.OPRF, Mode.VOPRF):
            runs = [run_protocol(mode, inputs) for _ in range(args.runs)]
            cells = [_rate(n, [r[i] for r in runs]) for i in range(3)]
            total = _rate(n, [sum(r) for r in runs])
            print(f"| {mode.name} | {n:,} | {' | '.join(cells)} | **{total}** |")
            if mode != Mode.OPRF and n > MAX_VERIFIABLE_BATCH:
                parts = len(_chunks(inputs, MAX_VERIFIABLE_BATCH))
                notes.append(f"{mode.name} at {n:,} items: {parts} batches (one proof each).")
    print("\n| evaluate_batch (index build) | records | records/s |")
    print("| --- | ---: | ---: |")
    for n in args.sizes:
        inputs = [os.urandom(24) for _ in range(n)]
        times = [run_evaluate_batch(inputs) for _ in range(args.runs)]
        print(f"| OPRF Evaluate | {n:,} | **{_rate(n, times)}** |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
