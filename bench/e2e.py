"""End-to-end benchmark: the real node over gRPC with mutual TLS and the audit log on, via the SDK.

    .venv/bin/python bench/e2e.py                    # N = 1,000,000 records: several minutes
    .venv/bin/python bench/e2e.py --n 20000 --m-blinded 2000 --m-hashed 20000 \\
        --latency-calls 100 --runs 1                 # a quick check

What it does:

1. builds a node directory (``init_node``: keys, development PKI, SQLite audit store) whose source
   table ``residents`` holds N synthetic, valid, distinct Luzhou resident ID numbers; the resource
   keeps the single comparison key ``id_number``; the hashed and blinded indexes are built with
   ``provider_node.loader.load_resource``. The directory is cached (``--workdir``, default
   ``.bench-cache/e2e-<N>``) so that re-runs skip the build;
2. starts ``bidui provider serve`` as a subprocess (client and server do not share a GIL) and
   waits for the health service to report SERVING;
3. through ``client_sdk.ComparisonClient``: compares M items in blinded mode and M items in hashed
   mode (half present, half absent; the match counts are checked), and measures single-record
   latency over sequential ``compare()`` calls of one record, reusing one client. Each
   ``compare()`` is measured as the SDK does it: DescribeResource first, then GetHashKey +
   CompareHashed (hashed) or BlindEvaluate + MatchBlinded (blinded);
4. runs the OpenMined PSI baseline (``bench/psi_baseline.py``, openmined-psi 2.0.6 in its own
   venv ``.bench-venv``, created when missing) on the same N and M items;
5. prints a markdown table with the targets marked met / MISSED (``--json FILE`` also writes the
   numbers as JSON), then stops the node with SIGTERM.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client_sdk import ComparisonClient, Credentials
from comparator import group
from comparator.fields import resident_id_check_character
from provider_node.cli import init_node
from provider_node.config import load_config
from provider_node.keys import NodeKeys
from provider_node.loader import load_resource
from provider_node.resources import build_catalog

REPO = Path(__file__).resolve().parent.parent
AREA_CODES = ("510502", "510503", "510504", "510521", "510522", "510524", "510525")
REQUESTER = "luzhou-civil-affairs"
RESOURCE = "residents"
KEY = "id_number"
PURPOSE = "benchmark: end-to-end throughput and latency"
META_FILE = "bench-meta.json"
FIRST_DAY = _dt.date(1930, 1, 1)
LAST_DAY = _dt.date(2020, 12, 31)
PSI_VERSION = "2.0.6"

# Targets of issue 3, item 7.
TARGET_HASHED_ITEMS_S = 300_000.0
TARGET_P99_HASHED_MS = 10.0
TARGET_P99_BLINDED_MS = 15.0
TARGET_BLINDED_OVER_PSI = 1.5


# ---- data ------------------------------------------------------------------------------------


def resident_ids(count: int, seed: int) -> list[str]:
    """``count`` distinct valid Luzhou resident ID numbers, in a reproducible order."""
    rng = random.Random(seed)
    days = [
        (FIRST_DAY + _dt.timedelta(days=d)).strftime("%Y%m%d")
        for d in range((LAST_DAY - FIRST_DAY).days + 1)
    ]
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        body = f"{rng.choice(AREA_CODES)}{rng.choice(days)}{rng.randrange(1000):03d}"
        if body in seen:
            continue
        seen.add(body)
        out.append(body + resident_id_check_character(body))
    return out


@dataclass(frozen=True)
class Dataset:
    present: list[str]  # the provider's N records
    absent: list[str]  # valid IDs that are not among them


def make_dataset(n: int, extra: int, seed: int) -> Dataset:
    ids = resident_ids(n + extra, seed)
    return Dataset(present=ids[:n], absent=ids[n:])


def queries(data: Dataset, m: int, rng: random.Random) -> tuple[list[str], list[bool]]:
    """``m`` IDs, half present and half absent, shuffled; and whether each is present."""
    half = m // 2
    rows = [(x, True) for x in rng.sample(data.present, m - half)]
    rows += [(x, False) for x in rng.sample(data.absent, half)]
    rng.shuffle(rows)
    return [x for x, _ in rows], [p for _, p in rows]


# ---- the node --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeDir:
    directory: Path
    config_path: Path
    ca_cert: Path
    client_cert: Path
    client_key: Path
    meta: dict[str, Any]


def build_node(directory: Path, data: Dataset, seed: int) -> NodeDir:
    """The cached node directory for ``data``, built (and indexes loaded) when absent or stale."""
    meta_path = directory / META_FILE
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("n") == len(data.present) and meta.get("seed") == seed:
            print(f"node directory {directory}: cached (built {meta['built']})", file=sys.stderr)
            return _node_dir(directory, meta)
    if directory.exists():
        shutil.rmtree(directory)
    print(
        f"building node directory {directory} with {len(data.present):,} records", file=sys.stderr
    )
    init = init_node(directory, clients=(REQUESTER,))
    text = init.config_path.read_text(encoding="utf-8")
    edited = text.replace(
        'keys = { "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }',
        'keys = { "id_number" = ["id_number"] }',
    )
    if edited == text or "max_batch_items = 100000" not in edited:
        raise SystemExit("node.toml template changed: cannot set the single key id_number")
    init.config_path.write_text(edited, encoding="utf-8")

    t0 = time.perf_counter()
    with sqlite3.connect(init.source_db) as db:
        db.executemany(
            "INSERT INTO residents VALUES (?, ?, ?)",
            ((x, "张三", f"{x[6:10]}-{x[10:12]}-{x[12:14]}") for x in data.present),
        )
    db.close()
    write_seconds = time.perf_counter() - t0

    config = load_config(init.config_path)
    keys = NodeKeys.load(config.keys.dir)
    resource = build_catalog(config)[RESOURCE]
    report = load_resource(resource, config, keys)
    if report.invalid_rows or report.source_rows != len(data.present):
        raise SystemExit(f"load: {report.source_rows} rows, {report.invalid_rows} invalid")
    meta = {
        "n": len(data.present),
        "seed": seed,
        "built": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "source_write_seconds": write_seconds,
        "load_seconds": report.seconds,
        "indexes": {i.mode: i.records for i in report.indexes},
    }
    print(
        f"source table written in {write_seconds:.1f} s; indexes (hashed + blinded) built in "
        f"{report.seconds:.1f} s",
        file=sys.stderr,
    )
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return _node_dir(directory, meta)


def _node_dir(directory: Path, meta: dict[str, Any]) -> NodeDir:
    pki = directory / "pki"
    return NodeDir(
        directory=directory,
        config_path=directory / "node.toml",
        ca_cert=pki / "ca.pem",
        client_cert=pki / "clients" / f"{REQUESTER}.pem",
        client_key=pki / "clients" / f"{REQUESTER}.key",
        meta=meta,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``bidui provider serve`` in a subprocess; ``stop`` sends SIGTERM."""

    def __init__(self, node: NodeDir, credentials: Credentials) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = node.directory / "serve.log"
        self._log = self.log_path.open("wb")
        command = [
            str(Path(sys.executable).with_name("bidui")),
            "provider",
            "serve",
            "--config",
            str(node.config_path),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--metrics-listen",
            f"127.0.0.1:{self.metrics_port}",
        ]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        self.credentials = credentials

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    def wait_serving(self, timeout: float = 300.0) -> float:
        """Seconds until the health service answered SERVING."""
        t0 = time.perf_counter()
        channel = grpc.secure_channel(self.target, self.credentials.channel_credentials())
        try:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # the stubs' typing lacks Check
            while True:
                if self.process.poll() is not None:
                    raise SystemExit(
                        f"the node exited with {self.process.returncode}:\n"
                        + self.log_path.read_text(encoding="utf-8", errors="replace")
                    )
                if time.perf_counter() - t0 > timeout:
                    raise SystemExit(f"the node was not SERVING after {timeout:.0f} s")
                try:
                    reply = stub.Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=2.0, wait_for_ready=True
                    )
                except grpc.RpcError:
                    continue
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.perf_counter() - t0
                time.sleep(0.2)
        finally:
            channel.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


# ---- measurements ----------------------------------------------------------------------------


def throughput(
    client: ComparisonClient, mode: str, items: list[str], expected: list[bool]
) -> float:
    """Seconds for one ``compare()`` of ``items``; checks every outcome."""
    records = [{KEY: x} for x in items]
    t0 = time.perf_counter()
    result = client.compare(RESOURCE, records, key=KEY, mode=mode, purpose=PURPOSE)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    want = sum(expected)
    if result.error_count or result.matched_count != want:
        raise SystemExit(
            f"{mode}: matched {result.matched_count}, errors {result.error_count}; expected "
            f"{want} matches and no error"
        )
    wrong = sum((o.status == "matched") != p for o, p in zip(result, expected, strict=True))
    if wrong:
        raise SystemExit(f"{mode}: {wrong} outcomes differ from the expected ones")
    return seconds


def latencies(
    client: ComparisonClient, mode: str, items: list[str], expected: list[bool]
) -> list[float]:
    """Seconds of each sequential single-record ``compare()``; checks each outcome."""
    out: list[float] = []
    for x, present in zip(items, expected, strict=True):
        t0 = time.perf_counter()
        result = client.compare(RESOURCE, [{KEY: x}], key=KEY, mode=mode, purpose=PURPOSE)  # type: ignore[arg-type]
        out.append(time.perf_counter() - t0)
        if result.matched_count != int(present) or result.error_count:
            raise SystemExit(f"{mode} single record: wrong outcome for a {present=} record")
    return out


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


# ---- the PSI baseline ------------------------------------------------------------------------


def ensure_psi_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import private_set_intersection.python"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {venv} with openmined-psi=={PSI_VERSION}", file=sys.stderr)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"openmined-psi=={PSI_VERSION}"], check=True
    )
    return python


def run_psi(
    venv: Path, node: NodeDir, data: Dataset, items: list[str], expected: int, runs: int
) -> dict[str, Any]:
    python = ensure_psi_venv(venv)
    server_file = node.directory / "psi-server-items.txt"
    if not server_file.exists():
        server_file.write_text("\n".join(data.present) + "\n", encoding="utf-8")
    client_file = node.directory / "psi-client-items.txt"
    client_file.write_text("\n".join(items) + "\n", encoding="utf-8")
    command = [
        str(python),
        str(REPO / "bench" / "psi_baseline.py"),
        "--server-items",
        str(server_file),
        "--client-items",
        str(client_file),
        "--runs",
        str(runs),
        "--expected",
        str(expected),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"PSI baseline failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# ---- report ----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "system": platform.system(),
        "python": platform.python_version(),
        "libsodium": group.libsodium_version(),
        "grpcio": metadata.version("grpcio"),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _mark(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    a = results["args"]
    r = results["bidui"]
    psi = results.get("psi")
    lines = [
        "## bidui end-to-end benchmark (gRPC + mutual TLS + SQLite audit log, via client_sdk)",
        "",
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['system']}); node and client in separate "
        "processes on the same machine, loopback",
        f"- Python {m['python']}, libsodium {m['libsodium']}, grpcio {m['grpcio']}"
        + (f", {psi['library']} (own venv)" if psi else ""),
        f"- provider N = {a['n']:,} records (resource `{RESOURCE}`, key `{KEY}`); index build "
        f"(hashed + blinded) {results['load_seconds']:.1f} s; node start to SERVING "
        f"{results['start_seconds']:.1f} s",
        f"- M = {a['m_blinded']:,} (blinded), {a['m_hashed']:,} (hashed), half present; SDK "
        f"max_batch {a['batch_blinded']:,} (blinded), {a['batch_hashed']:,} (hashed); "
        f"median of {a['runs']} run(s)",
        f"- single-record latency: {a['latency_calls']:,} sequential `compare()` calls of one "
        "record per mode, one reused client; each call is DescribeResource + GetHashKey + "
        "CompareHashed (hashed) or DescribeResource + BlindEvaluate + MatchBlinded (blinded)",
        "",
        "| measurement | value | target | |",
        "| --- | ---: | ---: | --- |",
    ]
    hashed_ok = r["hashed_items_s"] >= TARGET_HASHED_ITEMS_S
    p99h_ok = r["hashed_p99_ms"] <= TARGET_P99_HASHED_MS
    p99b_ok = r["blinded_p99_ms"] <= TARGET_P99_BLINDED_MS
    lines += [
        f"| blinded, M = {a['m_blinded']:,}: items/s end to end | "
        f"**{r['blinded_items_s']:,.0f}** | | |",
        f"| hashed, M = {a['m_hashed']:,}: items/s end to end | **{r['hashed_items_s']:,.0f}** "
        f"| >= {TARGET_HASHED_ITEMS_S:,.0f} | {_mark(hashed_ok)} |",
        f"| hashed, 1 record: p50 latency | {r['hashed_p50_ms']:.2f} ms | | |",
        f"| hashed, 1 record: p99 latency | **{r['hashed_p99_ms']:.2f} ms** | "
        f"<= {TARGET_P99_HASHED_MS:.0f} ms | {_mark(p99h_ok)} |",
        f"| blinded, 1 record: p50 latency | {r['blinded_p50_ms']:.2f} ms | | |",
        f"| blinded, 1 record: p99 latency | **{r['blinded_p99_ms']:.2f} ms** | "
        f"<= {TARGET_P99_BLINDED_MS:.0f} ms | {_mark(p99b_ok)} |",
    ]
    if psi:
        ratio = results["blinded_over_psi"]
        lines += [
            f"| OpenMined PSI, M = {psi['m']:,}: items/s (request + response + intersection) | "
            f"{psi['items_per_second']:,.0f} | | |",
            f"| ratio bidui blinded / PSI | **{ratio:.2f}x** | >= {TARGET_BLINDED_OVER_PSI}x | "
            f"{_mark(ratio >= TARGET_BLINDED_OVER_PSI)} |",
            f"| PSI setup message the client downloads (N = {psi['n']:,}, GCS, fpr "
            f"{psi['fpr']:g}) | {psi['setup_bytes']:,} bytes | (bidui: none) | |",
        ]
    else:
        lines.append("| OpenMined PSI | skipped (--skip-psi) | | |")
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="provider records")
    parser.add_argument("--m-blinded", type=int, default=10_000, help="items, blinded mode")
    parser.add_argument("--m-hashed", type=int, default=100_000, help="items, hashed mode")
    parser.add_argument("--batch-blinded", type=int, default=10_000, help="SDK max_batch")
    parser.add_argument("--batch-hashed", type=int, default=100_000, help="SDK max_batch")
    parser.add_argument("--latency-calls", type=int, default=1000, help="per mode")
    parser.add_argument("--runs", type=int, default=3, help="median reported")
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("--skip-psi", action="store_true", help="skip the OpenMined PSI baseline")
    parser.add_argument("--workdir", type=Path, default=None, help="default .bench-cache/e2e-<N>")
    parser.add_argument("--psi-venv", type=Path, default=REPO / ".bench-venv")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    workdir = (args.workdir or REPO / ".bench-cache" / f"e2e-{args.n}").absolute()
    m_max = max(args.m_blinded, args.m_hashed, 2 * args.latency_calls)
    if args.n < m_max:
        parser.error(f"--n must be at least {m_max}")

    t0 = time.perf_counter()
    data = make_dataset(args.n, m_max, args.seed)
    print(f"{args.n + m_max:,} resident IDs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    node = build_node(workdir, data, args.seed)
    credentials = Credentials.from_files(node.ca_cert, node.client_cert, node.client_key)
    rng = random.Random(args.seed + 1)
    blinded_items, blinded_expected = queries(data, args.m_blinded, rng)
    hashed_items, hashed_expected = queries(data, args.m_hashed, rng)
    single_items, single_expected = queries(data, args.latency_calls, rng)

    server = ServerProcess(node, credentials)
    raw: dict[str, list[Any]] = {k: [] for k in ("blinded_s", "hashed_s", "lat_h", "lat_b")}
    try:
        start_seconds = server.wait_serving()
        print(f"node SERVING on {server.target} after {start_seconds:.1f} s", file=sys.stderr)
        big_b = ComparisonClient(
            server.target, credentials, timeout=600.0, max_batch=args.batch_blinded
        )
        big_h = ComparisonClient(
            server.target, credentials, timeout=600.0, max_batch=args.batch_hashed
        )
        single = ComparisonClient(server.target, credentials, timeout=60.0)
        with big_b, big_h, single:
            # Warm up: TLS handshakes, first-call costs on both sides.
            warm_items, warm_expected = queries(data, 100, random.Random(0))
            for c in (big_b, big_h, single):
                for mode in ("hashed", "blinded"):
                    throughput(c, mode, warm_items, warm_expected)
            for run in range(args.runs):
                steps: list[tuple[str, Callable[[], Any]]] = [
                    (
                        "blinded_s",
                        lambda: throughput(big_b, "blinded", blinded_items, blinded_expected),
                    ),
                    (
                        "hashed_s",
                        lambda: throughput(big_h, "hashed", hashed_items, hashed_expected),
                    ),
                    ("lat_h", lambda: latencies(single, "hashed", single_items, single_expected)),
                    ("lat_b", lambda: latencies(single, "blinded", single_items, single_expected)),
                ]
                for name, step in steps:
                    raw[name].append(step())
                blinded_rate = args.m_blinded / raw["blinded_s"][-1]
                hashed_rate = args.m_hashed / raw["hashed_s"][-1]
                print(
                    f"run {run + 1}/{args.runs}: blinded {blinded_rate:,.0f} items/s, "
                    f"hashed {hashed_rate:,.0f} items/s, "
                    f"p99 hashed {percentile(raw['lat_h'][-1], 99) * 1e3:.2f} ms, "
                    f"p99 blinded {percentile(raw['lat_b'][-1], 99) * 1e3:.2f} ms",
                    file=sys.stderr,
                )
    finally:
        code = server.stop()
        print(f"node stopped (SIGTERM), exit code {code}", file=sys.stderr)

    def med(values: Sequence[float]) -> float:
        return float(statistics.median(values))

    bidui: dict[str, Any] = {
        "blinded_items_s": med([args.m_blinded / s for s in raw["blinded_s"]]),
        "hashed_items_s": med([args.m_hashed / s for s in raw["hashed_s"]]),
        "hashed_p50_ms": med([percentile(x, 50) * 1e3 for x in raw["lat_h"]]),
        "hashed_p99_ms": med([percentile(x, 99) * 1e3 for x in raw["lat_h"]]),
        "blinded_p50_ms": med([percentile(x, 50) * 1e3 for x in raw["lat_b"]]),
        "blinded_p99_ms": med([percentile(x, 99) * 1e3 for x in raw["lat_b"]]),
        "blinded_seconds": raw["blinded_s"],
        "hashed_seconds": raw["hashed_s"],
    }
    results: dict[str, Any] = {
        "machine": machine(),
        "args": {
            "n": args.n,
            "m_blinded": args.m_blinded,
            "m_hashed": args.m_hashed,
            "batch_blinded": args.batch_blinded,
            "batch_hashed": args.batch_hashed,
            "latency_calls": args.latency_calls,
            "runs": args.runs,
        },
        "load_seconds": node.meta["load_seconds"],
        "start_seconds": start_seconds,
        "bidui": bidui,
    }
    if not args.skip_psi:
        print("OpenMined PSI baseline...", file=sys.stderr)
        psi = run_psi(args.psi_venv, node, data, blinded_items, sum(blinded_expected), args.runs)
        results["psi"] = psi
        results["blinded_over_psi"] = bidui["blinded_items_s"] / psi["items_per_second"]
    results["targets"] = {
        "hashed_items_s": bidui["hashed_items_s"] >= TARGET_HASHED_ITEMS_S,
        "hashed_p99_ms": bidui["hashed_p99_ms"] <= TARGET_P99_HASHED_MS,
        "blinded_p99_ms": bidui["blinded_p99_ms"] <= TARGET_P99_BLINDED_MS,
    }
    if "blinded_over_psi" in results:
        results["targets"]["blinded_over_psi"] = (
            results["blinded_over_psi"] >= TARGET_BLINDED_OVER_PSI
        )
    print(report(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
