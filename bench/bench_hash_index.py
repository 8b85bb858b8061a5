"""Benchmark hashed mode and the match index: canonicalisation, HMAC tags, index build and lookup.

    .venv/bin/python bench/bench_hash_index.py                  # N = 1M, median of 3
    .venv/bin/python bench/bench_hash_index.py --n 100000 --runs 5

Prints a markdown table to stdout. Everything runs on one core. Targets (issue 2): HMAC >= 400,000
tags/s; index <= 40 bytes resident per record at N = 1M. The resident size is measured in a fresh
child process (RSS after building minus RSS before), so memory freed earlier cannot hide any.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import gc
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from _machine import cpu_model  # bench/_machine.py, beside this script

from comparator.canonical import ComparisonKey, Domain, encode_records
from comparator.fields import resident_id_check_character
from comparator.index import ENTRY_LENGTH, MatchIndex
from comparator.keyed_hash import KeyedHasher, generate_hmac_key

FIELD_TYPES = {"id_number": "cn_resident_id", "name": "person_name"}


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _median_rate(count: int, runs: int, fn: Callable[[], Any]) -> float:
    """Median items per second of ``runs`` calls of ``fn`` (which processes ``count`` items)."""
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return count / statistics.median(times)


PROVINCES = ["11", "13", "21", "23", "32", "37", "41", "44", "46", "50", "51", "53", "61", "65"]


def _records(n: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    surnames, given = "王李张刘陈杨赵黄周吴", "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超"
    out = []
    for _ in range(n):
        born = _dt.date(1940, 1, 1) + _dt.timedelta(days=rng.randrange(60 * 365))
        area = f"{rng.choice(PROVINCES)}{rng.randrange(10000):04d}"  # a province, as IDs must
        body = f"{area}{born:%Y%m%d}{rng.randrange(1000):03d}"
        name = rng.choice(surnames) + "".join(rng.choices(given, k=rng.choice((1, 2))))
        out.append({"id_number": body + resident_id_check_character(body), "name": name})
    return out


def _random_entries(n: int) -> Iterator[bytes]:
    urandom = os.urandom
    for _ in range(n):
        yield urandom(ENTRY_LENGTH)


def _rss_child(n: int) -> None:
    """Run in a fresh process: print nbytes and the RSS growth of building an N-entry index."""
    gc.collect()
    before = _rss_bytes()
    index = MatchIndex.build(_random_entries(n))
    gc.collect()
    after = _rss_bytes()
    print(index.nbytes, after - before)


def _measure_rss(n: int) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


Row = tuple[str, str, str]


def _bench_hashing(b: int, runs: int) -> list[Row]:
    """Requester side of hashed mode: canonicalise + encode, then tag."""
    rows: list[Row] = []
    records = _records(b)
    for key_fields in (["id_number"], ["id_number", "name"]):
        key = ComparisonKey.from_names("+".join(key_fields), key_fields, FIELD_TYPES)
        domain = Domain("residents", key.name, 1)
        rate = _median_rate(b, runs, functools.partial(encode_records, domain, key, records))
        rows.append(
            (f"canonicalise + encode, key `{key.name}`", f"{b:,}", f"{rate:,.0f} records/s")
        )
    key = ComparisonKey.from_names("id_number", ["id_number"], FIELD_TYPES)
    domain = Domain("residents", "id_number", 1)
    hasher = KeyedHasher(generate_hmac_key(), domain)
    encoded = encode_records(domain, key, records).encoded
    rate = _median_rate(b, runs, lambda: hasher.tags(encoded))
    rows.append(("HMAC-SHA-256 tags (one core)", f"{b:,}", f"{rate:,.0f} tags/s"))
    rate = _median_rate(b, runs, lambda: hasher.tags(encode_records(domain, key, records).encoded))
    rows.append(
        ("hashed end to end: encode + tag, `id_number`", f"{b:,}", f"{rate:,.0f} records/s")
    )
    return rows


def _bench_index(n: int, q: int, runs: int) -> tuple[list[Row], int]:
    """Provider side: build the index, then answer a batch of half hits and half misses."""
    raw = os.urandom(n * ENTRY_LENGTH)
    entries = [raw[i : i + ENTRY_LENGTH] for i in range(0, len(raw), ENTRY_LENGTH)]
    rate = _median_rate(n, runs, lambda: MatchIndex.build(entries))
    rows = [("index build (from a list of 32-byte tags)", f"{n:,}", f"{rate:,.0f} records/s")]
    index = MatchIndex.build(entries)
    rng = random.Random(1)
    queries = rng.sample(entries, q // 2) + list(_random_entries(q - q // 2))
    rng.shuffle(queries)
    hits = int(index.contains(queries).sum())
    rate = _median_rate(q, runs, lambda: index.contains(queries))
    size = f"{n:,} / {q:,} queries"
    rows.append((f"index lookup ({hits:,} hits)", size, f"{rate:,.0f} queries/s"))
    return rows, index.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="index size (records)")
    parser.add_argument("--queries", type=int, default=100_000, help="lookup batch size")
    parser.add_argument("--batch", type=int, default=200_000, help="records per hashing batch")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        _rss_child(args.rss_child)
        return

    n, runs = args.n, args.runs
    rows = _bench_hashing(args.batch, runs)
    index_rows, nbytes = _bench_index(n, args.queries, runs)
    rows += index_rows
    child_nbytes, rss_delta = _measure_rss(n)
    assert child_nbytes == nbytes
    rows.append(("index size: nbytes / N", f"{n:,}", f"{nbytes / n:.1f} bytes/record"))
    rows.append(
        (
            "index size: RSS growth / N (fresh process)",
            f"{n:,}",
            f"{rss_delta / n:.1f} bytes/record",
        )
    )

    print(
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}; {_dt.date.today().isoformat()}; median of {runs} runs\n"
    )
    print("| measurement | size | result |")
    print("| --- | ---: | ---: |")
    for name, size, result in rows:
        print(f"| {name} | {size} | {result} |")


if __name__ == "__main__":
    main()
