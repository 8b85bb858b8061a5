"""Where a hashed-mode comparison spends its CPU (issue 10): the requester's stages and the node's.

    .venv/bin/python bench/profile_hashed.py --n 200000 --m 100000 --runs 5
    .venv/bin/python bench/profile_hashed.py --pyinstrument client.txt --py-spy node.txt

Three measurements, all as CPU time per item (``time.process_time`` in this process, the node's
from /proc), since on a shared 2-core machine wall-clock time is noise:

1. the requester's stages without a network: canonicalise + encode (``encode_records``), HMAC tags
   (``KeyedHasher.tags``), building and serialising the ``CompareHashedRequest``s, unpacking the
   answers' match bits;
2. ``ComparisonClient.compare(..., mode="hashed")`` against the real node (``bench/e2e.py``'s,
   built once in ``.bench-cache/e2e-N``): the requester's and the node's CPU per item, wall time;
3. optionally, profiles of (2): ``--pyinstrument FILE`` (this process, one compare) and
   ``--py-spy FILE`` (the node's process, sampled by py-spy while the runs go; the file gets the
   functions with the most samples, own and cumulative).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _e2e_node import ServerProcess, prepare_node
from _e2e_scenario import KEY, PURPOSE, REPO, RESOURCE, Queries, check_result, log, make_queries

from bidui.v1 import comparison_pb2
from client_sdk import ComparisonClient, ComparisonResult, Credentials
from client_sdk.comparison.chunks import match_bits
from comparator.canonical import ComparisonKey, Domain, FieldSpec, encode_records
from comparator.index import pack_matches
from comparator.keyed_hash import KeyedHasher

_CHUNK = 10_000  # the SDK's max_batch


def _cpu_per_item(work: Callable[[], Any], items: int, repeats: int = 3) -> float:
    """The least CPU time of ``repeats`` calls of ``work``, in microseconds per item."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best / items * 1e6


def requester_stages(records: list[dict[str, str]]) -> dict[str, float]:
    """CPU µs per item of each step the SDK takes for a hashed comparison, without a network."""
    m = len(records)
    key = ComparisonKey("id_number", (FieldSpec("id_number", "cn_resident_id"),))
    domain = Domain(RESOURCE, KEY, 1)
    hasher = KeyedHasher(os.urandom(32), domain)
    header = comparison_pb2.ComparisonHeader(
        resource_id=RESOURCE, comparison_key=KEY, purpose=PURPOSE, request_id="r", key_version=1
    )
    chunks = [records[i : i + _CHUNK] for i in range(0, m, _CHUNK)]
    encoded = [encode_records(domain, key, chunk).encoded for chunk in chunks]
    tags = [hasher.tags(e) for e in encoded]
    answers = [
        comparison_pb2.MatchResult(
            item_count=len(t),
            match_bits=pack_matches([i % 2 == 0 for i in range(len(t))]),
            match_count=(len(t) + 1) // 2,
        )
        for t in tags
    ]
    return {
        "canonicalise + encode": _cpu_per_item(
            lambda: [encode_records(domain, key, chunk) for chunk in chunks], m
        ),
        "HMAC tags": _cpu_per_item(lambda: [hasher.tags(e) for e in encoded], m),
        "CompareHashedRequest build + serialise": _cpu_per_item(
            lambda: [
                comparison_pb2.CompareHashedRequest(header=header, tags=t).SerializeToString()
                for t in tags
            ],
            m,
        ),
        "answers' match bits checked and unpacked (match_bits)": _cpu_per_item(
            lambda: [match_bits(a, a.item_count) for a in answers], m
        ),
    }


def _py_spy_summary(raw: Path, top: int = 20) -> str:
    """From py-spy's raw (collapsed) stacks: where the hashed handler's samples go (the frame
    called from ``ProviderNode.compare_hashed``, and the servicer's own share), then the
    functions with the most samples of the whole process."""
    own: collections.Counter[str] = collections.Counter()
    handler: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        own[frames[-1]] += count
        names = [frame.split(" (", 1)[0] for frame in frames]
        if "ComparisonServicer._hashed" in names:
            if "ProviderNode.compare_hashed" in names:
                below = names.index("ProviderNode.compare_hashed") + 1
                step = names[below] if below < len(names) else "(its own lines)"
                handler[f"compare_hashed > {step}"] += count
            else:
                handler["servicer: request decoding, caller, answer message"] += count
    in_handler = sum(handler.values())
    lines = [
        f"{samples} samples (all threads, idle ones left out; a thread waiting in gRPC's C core",
        f"may still count); {in_handler} in the CompareHashed handler:",
        "",
        "% of handler  step",
    ]
    for step, count in handler.most_common():
        lines.append(f"{100 * count / max(in_handler, 1):12.1f}  {step}")
    lines += ["", "% of samples (own)  function"]
    for frame, count in own.most_common(top):
        lines.append(f"{100 * count / samples:18.1f}  {frame}")
    return "\n".join(lines) + "\n"


def end_to_end(args: argparse.Namespace, queries: Queries) -> dict[str, float]:
    """``runs`` hashed compares against the node: CPU µs per item (requester, node) and wall."""
    node = prepare_node(REPO / ".bench-cache" / f"e2e-{args.n}", args.n, args.seed)
    credentials = Credentials.from_files(node.ca_cert, node.client_cert, node.client_key)
    m = len(queries.records)
    with tempfile.TemporaryDirectory(prefix="bidui-profile-") as scratch:
        server = ServerProcess(node, Path(scratch))
        spy: subprocess.Popen[bytes] | None = None
        try:
            server.wait_serving(credentials, timeout=600)
            with ComparisonClient(server.target, credentials) as client:

                def compare() -> ComparisonResult:
                    return client.compare(
                        RESOURCE, queries.records, key=KEY, mode="hashed", purpose=PURPOSE
                    )

                # warm-up: the connection, the catalog entry and the key
                check_result(compare(), queries, "hashed warm-up")
                if args.py_spy:
                    spy_raw = Path(scratch) / "node.raw"
                    spy = subprocess.Popen(
                        [str(Path(sys.executable).with_name("py-spy")), "record", "--format",
                         "raw", "--rate", "500", "--nonblocking", "--output", str(spy_raw),
                         "--pid", str(server.process.pid)],
                        stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                    time.sleep(1.0)  # py-spy attaches
                walls, client_cpu, node_cpu = [], 0.0, 0.0
                for _ in range(args.runs):
                    t0, c0, n0 = time.perf_counter(), time.process_time(), server.cpu_seconds()
                    result = compare()
                    walls.append(time.perf_counter() - t0)
                    client_cpu += time.process_time() - c0
                    node_cpu += server.cpu_seconds() - n0
                    check_result(result, queries, "hashed")  # every answer, outside the timing
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
                    spy.wait(timeout=60)
                    Path(args.py_spy).write_text(_py_spy_summary(spy_raw), encoding="utf-8")
                    log(f"node profile (py-spy) written to {args.py_spy}")
                if args.pyinstrument:
                    from pyinstrument import Profiler

                    profiler = Profiler()
                    with profiler:
                        compare()
                    Path(args.pyinstrument).write_text(
                        profiler.output_text(unicode=True, show_all=False), encoding="utf-8"
                    )
                    log(f"requester profile (pyinstrument) written to {args.pyinstrument}")
        finally:
            if spy is not None and spy.poll() is None:
                spy.kill()
            server.stop()
    return {
        "requester_cpu_us_per_item": client_cpu / (args.runs * m) * 1e6,
        "node_cpu_us_per_item": node_cpu / (args.runs * m) * 1e6,
        "items_per_second": m / statistics.median(walls),
        "cores_busy": (client_cpu + node_cpu) / sum(walls),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="provider records (node cache)")
    parser.add_argument("--m", type=int, default=100_000, help="records per comparison")
    parser.add_argument("--runs", type=int, default=5, help="end-to-end compares measured")
    parser.add_argument("--seed", type=int, default=2017, help="seed (bench/e2e.py's default)")
    parser.add_argument("--pyinstrument", metavar="FILE", help="requester profile, text")
    parser.add_argument("--py-spy", metavar="FILE", help="node profile summary, text")
    args = parser.parse_args(argv)

    server_ids = REPO / ".bench-cache" / f"e2e-{args.n}" / "server_items.txt"
    if not server_ids.exists():
        prepare_node(server_ids.parent, args.n, args.seed)
    queries = make_queries(server_ids.read_text(encoding="utf-8").split(), args.m, args.seed + 200)

    stages = requester_stages(queries.records)
    e2e = end_to_end(args, queries)
    print(f"M = {args.m:,} id_number records, N = {args.n:,}; CPU time per item (µs)\n")
    print("| requester stage, no network | CPU µs/item |\n| --- | ---: |")
    for name, value in stages.items():
        print(f"| {name} | {value:.3f} |")
    print(f"\n| end to end, {args.runs} compares | |\n| --- | ---: |")
    print(f"| requester CPU µs/item | {e2e['requester_cpu_us_per_item']:.2f} |")
    print(f"| node CPU µs/item | {e2e['node_cpu_us_per_item']:.2f} |")
    print(f"| items/s (median wall) | {e2e['items_per_second']:,.0f} |")
    print(f"| cores busy | {e2e['cores_busy']:.2f} |")


if __name__ == "__main__":
    main()
