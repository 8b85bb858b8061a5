"""End-to-end benchmark: SDK -> real node over mutual TLS gRPC, audit on; OpenMined PSI baseline.

    .venv/bin/python bench/e2e.py                         # N = 1M, defaults of issue 3 (minutes)
    .venv/bin/python bench/e2e.py --n 20000 --m-blinded 2000 --m-hashed 20000 \\
        --latency-calls 100 --runs 1                      # a quick check
    .venv/bin/python bench/e2e.py --json results.json     # also write the results as JSON

What runs:

1. A provider node in ``--workdir`` (default ``.bench-cache/e2e-N``; reused when present): keys, a
   development PKI, a SQLite source table of N synthetic Luzhou residents (valid 18-digit resident
   ID numbers), and the ``id_number`` match indexes built with ``provider_node.loader`` (the build
   time per mode is reported: it is the index-build throughput at N).
2. ``bidui provider serve`` in a subprocess (its own GIL, as deployed) on a free loopback port, with
   its audit log in a fresh SQLite database in a temporary folder; the benchmark waits for the
   health service to report SERVING.
3. Through ``client_sdk.ComparisonClient`` (mTLS): blinded mode over M_blinded records and hashed
   mode over M_hashed records (half present, half absent; every answer is checked), then
   single-record latency over ``--latency-calls`` sequential ``compare()`` calls per mode.
4. The node is stopped and its audit chain verified (``bidui audit verify``).
5. OpenMined PSI (``bench/psi_baseline.py`` in ``.bench-venv``, created when missing) over the same
   N server items and the same M_blinded client items as the blinded run.

Prints a markdown table with the targets of issue 3 marked met or MISSED. Throughputs are the
median over ``--runs`` runs; latencies are the median over runs of each run's p50 and p99.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import json
import math
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
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import grpc
from _machine import cpu_model  # bench/_machine.py, beside this script
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bidui.demo import LUZHOU_AREA_CODES
from client_sdk import ComparisonClient, ComparisonResult, Credentials
from client_sdk.client import ComparisonMode as SdkMode
from comparator import group
from comparator.fields import resident_id_check_character
from provider_node.cli import init_node
from provider_node.config import ComparisonMode, load_config
from provider_node.keys import NodeKeys
from provider_node.loader import load_resource
from provider_node.resources import build_catalog

REPO = Path(__file__).resolve().parent.parent
RESOURCE = "residents"
KEY = "id_number"
PROVIDER = "luzhou-psb"
REQUESTER = "luzhou-civil-affairs"
PURPOSE = "benchmark: end-to-end comparison throughput and latency"
PSI_VERSION = "2.0.6"
SDK_MODES: tuple[SdkMode, ...] = ("hashed", "blinded")
CACHE_FORMAT = 1
# The id_number-only comparison key replaces the example keys of `bidui provider init`.
KEYS_LINE = 'keys = { "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }'
KEYS_LINE_BENCH = 'keys = { "id_number" = ["id_number"] }'

# Targets of issue 3 (item 7), on this machine.
TARGET_HASHED_ITEMS_S = 300_000
TARGET_P99_HASHED_MS = 10.0
TARGET_P99_BLINDED_MS = 15.0
TARGET_BLINDED_OVER_PSI = 1.5

_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂"


def _log(text: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# ---- machine ---------------------------------------------------------------------------------


def _git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libsodium": group.libsodium_version(),
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "bidui_revision": _git_revision(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---- synthetic data --------------------------------------------------------------------------


class IdFactory:
    """Valid 18-digit resident ID numbers of Luzhou residents: area code, birth date, sequence
    number and the ISO 7064 MOD 11-2 check character. Deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        first, last = _dt.date(1930, 1, 1).toordinal(), _dt.date(2020, 12, 31).toordinal()
        self._dates = [
            _dt.date.fromordinal(day).strftime("%Y%m%d") for day in range(first, last + 1)
        ]
        self._codes = list(LUZHOU_AREA_CODES)

    def take(self, count: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """``count`` distinct ID numbers, none in ``exclude``."""
        rng, dates, codes, check = self._rng, self._dates, self._codes, resident_id_check_character
        seen: set[str] = set()
        out: list[str] = []
        while len(out) < count:
            body = f"{codes[rng.randrange(7)]}{dates[rng.randrange(len(dates))]}"
            body += f"{rng.randrange(1000):03d}"
            id_number = body + check(body)
            if id_number in seen or id_number in exclude:
                continue
            seen.add(id_number)
            out.append(id_number)
        return out


def _names(count: int, rng: random.Random) -> Iterator[str]:
    for _ in range(count):
        yield rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2))))


# ---- the provider node -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Node:
    directory: Path
    config_path: Path
    ca_cert: Path
    client_cert: Path
    client_key: Path
    server_items: Path  # the N ID numbers, one a line (PSI's server set)
    build: dict[str, Any]  # index build report (from this run or the cached build)
    cached: bool


def _node_paths(directory: Path) -> tuple[Path, Path, Path, Path]:
    pki = directory / "pki"
    return (
        directory / "node.toml",
        pki / "ca.pem",
        pki / "clients" / f"{REQUESTER}.pem",
        pki / "clients" / f"{REQUESTER}.key",
    )


def prepare_node(directory: Path, n: int, seed: int) -> Node:
    """The node in ``directory``: reused when a complete build for (n, seed) is there."""
    meta_path = directory / "bench-e2e.json"
    config_path, ca_cert, client_cert, client_key = _node_paths(directory)
    server_items = directory / "server_items.txt"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") == CACHE_FORMAT and meta.get("n") == n and meta.get("seed") == seed:
            _log(f"reusing the node built in {directory} ({meta['built_at']})")
            return Node(
                directory, config_path, ca_cert, client_cert, client_key, server_items,
                meta["build"], cached=True,
            )  # fmt: skip
    if directory.exists():
        if not (meta_path.exists() or (directory / "node.toml").exists()):
            sys.exit(f"{directory} exists and is not a bench/e2e.py node; choose another --workdir")
        _log(f"removing the stale or incomplete node in {directory}")
        shutil.rmtree(directory)

    _log(f"creating the node in {directory}")
    init = init_node(directory, department=PROVIDER, clients=(REQUESTER,))
    text = init.config_path.read_text(encoding="utf-8")
    if KEYS_LINE not in text:
        sys.exit("the node.toml template changed: update KEYS_LINE in bench/e2e.py")
    init.config_path.write_text(text.replace(KEYS_LINE, KEYS_LINE_BENCH), encoding="utf-8")

    _log(f"generating {n:,} synthetic residents")
    t0 = time.perf_counter()
    ids = IdFactory(seed).take(n)
    rng = random.Random(seed + 1)
    births = (f"{i[6:10]}-{i[10:12]}-{i[12:14]}" for i in ids)
    with contextlib.closing(sqlite3.connect(init.source_db)) as db:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.executemany(
            "INSERT INTO residents VALUES (?, ?, ?)", zip(ids, _names(n, rng), births, strict=True)
        )
        db.commit()
    server_items.write_text("\n".join(ids) + "\n", encoding="utf-8")
    generate_seconds = time.perf_counter() - t0
    _log(f"  {generate_seconds:.1f} s")

    config = load_config(init.config_path)
    keys = NodeKeys.load(config.keys.dir)
    resource = build_catalog(config)[RESOURCE]
    build: dict[str, Any] = {"generate_seconds": generate_seconds}
    for mode in (ComparisonMode.HASHED, ComparisonMode.BLINDED):
        _log(f"building the {mode} index of {n:,} records (load_resource)")
        report = load_resource(dataclasses.replace(resource, modes=(mode,)), config, keys)
        (index,) = report.indexes
        if index.records != n or report.invalid_rows:
            sys.exit(f"{mode} index: {index.records} records, {report.invalid_rows} invalid")
        build[str(mode)] = {"seconds": report.seconds, "records": index.records}
        _log(f"  {report.seconds:.1f} s, {n / report.seconds:,.0f} records/s")
    meta = {
        "format": CACHE_FORMAT,
        "n": n,
        "seed": seed,
        "built_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "build": build,
    }
    meta_path.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return Node(
        directory, config_path, ca_cert, client_cert, client_key, server_items, build, cached=False
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bidui_command() -> list[str]:
    script = Path(sys.executable).with_name("bidui")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from bidui.cli import main; sys.exit(main())"]


class ServerProcess:
    """``bidui provider serve`` in a subprocess, audit log in ``audit_dir``."""

    def __init__(self, node: Node, audit_dir: Path) -> None:
        self.node = node
        self.env = dict(os.environ)
        self.env["BIDUI_AUDIT_DATABASE_URL"] = f"sqlite:///{audit_dir / 'audit.db'}"
        self.log_path = audit_dir / "serve.log"
        self.port = _free_port()
        self.metrics_port = _free_port()
        self._log_file = self.log_path.open("wb")
        command = [
            *_bidui_command(), "provider", "serve", "--config", str(node.config_path),
            "--listen", f"127.0.0.1:{self.port}",
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_serving(self, credentials: Credentials, timeout: float) -> float:
        """Seconds until the health service said SERVING; exits with the server log on failure."""
        started = time.perf_counter()
        channel = grpc.secure_channel(self.target, credentials.channel_credentials())
        stub: Any = health_pb2_grpc.HealthStub(channel)  # the typing stubs lack Check
        try:
            while time.perf_counter() - started < timeout:
                if self.process.poll() is not None:
                    self._fail(f"the node exited with code {self.process.returncode}")
                try:
                    answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2.0)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.perf_counter() - started
                except grpc.RpcError:
                    pass
                time.sleep(0.25)
        finally:
            channel.close()
        self.stop()
        self._fail(f"the node was not SERVING after {timeout:.0f} s")
        raise AssertionError("unreachable")

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) the node process has used so far."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rpc_counters(self) -> dict[str, tuple[float, float]]:
        """The node's ``bidui_rpc_duration_seconds`` (count, sum) by method, from /metrics."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        out: dict[str, tuple[float, float]] = {}
        for line in text.splitlines():
            if not line.startswith("bidui_rpc_duration_seconds_"):
                continue
            name, _, value = line.rpartition(" ")
            kind = "count" if name.startswith("bidui_rpc_duration_seconds_count") else "sum"
            if not name.startswith(f"bidui_rpc_duration_seconds_{kind}{{"):
                continue
            method = name.split('method="', 1)[1].split('"', 1)[0]
            count, total = out.get(method, (0.0, 0.0))
            out[method] = (float(value), total) if kind == "count" else (count, float(value))
        return out

    def _fail(self, reason: str) -> None:
        self._log_file.flush()
        log = self.log_path.read_text(encoding="utf-8", errors="replace")
        sys.exit(f"{reason}; its output:\n{log}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode

    def verify_audit(self) -> str:
        """``bidui audit verify`` on the run's audit database: its one-line answer."""
        done = subprocess.run(
            [*_bidui_command(), "audit", "verify", "--config", str(self.node.config_path)],
            env=self.env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"audit verify failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout.strip()


# ---- measurements ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Queries:
    records: list[dict[str, str]]
    present: list[bool]

    @property
    def expected_matches(self) -> int:
        return sum(self.present)


def make_queries(server_ids: list[str], m: int, seed: int) -> Queries:
    """``m`` records in random order: ``m // 2`` of the provider's, the rest valid but absent."""
    rng = random.Random(seed)
    present = rng.sample(server_ids, m // 2)
    absent = IdFactory(seed + 7).take(m - m // 2, exclude=set(server_ids))
    rows = [(i, True) for i in present] + [(i, False) for i in absent]
    rng.shuffle(rows)
    return Queries([{KEY: i} for i, _ in rows], [p for _, p in rows])


def check_result(result: ComparisonResult, queries: Queries, what: str) -> None:
    """Exit unless every record got exactly its right answer: a wrong benchmark is worthless."""
    if result.error_count:
        sys.exit(f"{what}: {result.error_count} records were refused: {result.errors[:3]}")
    if result.matched_count != queries.expected_matches:
        sys.exit(f"{what}: {result.matched_count} matches, expected {queries.expected_matches}")
    wrong = sum(o.is_match != p for o, p in zip(result, queries.present, strict=True))
    if wrong:
        sys.exit(f"{what}: {wrong} records got the wrong answer")


Counters = dict[str, tuple[float, float]]


def rpc_breakdown(before: Counters, after: Counters, compares: int) -> dict[str, Any]:
    """RPCs per ``compare()`` by method, and the node's handler time per ``compare()``.

    From the node's ``bidui_rpc_duration_seconds`` histogram (time inside the gRPC handler: not
    the TLS front, the network or the client)."""
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
) -> dict[str, Any]:
    """``runs`` calls of ``compare()`` over all of ``queries``; checks every answer."""
    m = len(queries.records)
    seconds: list[float] = []
    client_cpu = node_cpu = 0.0
    requests = 0
    before = server.rpc_counters()
    for run in range(runs):
        t0, c0, n0 = time.perf_counter(), time.process_time(), server.cpu_seconds()
        result = client.compare(RESOURCE, queries.records, key=KEY, mode=mode, purpose=PURPOSE)
        seconds.append(time.perf_counter() - t0)
        client_cpu += time.process_time() - c0
        node_cpu += server.cpu_seconds() - n0
        check_result(result, queries, f"{mode} run {run + 1}")
        requests = len(result.comparison_ids)
        _log(f"  {mode} run {run + 1}: {len(queries.records) / seconds[-1]:,.0f} items/s")
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


def _latencies(call: Callable[[int], None], calls: int) -> list[float]:
    out: list[float] = []
    for i in range(calls):
        t0 = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def latency(
    client: ComparisonClient,
    server: ServerProcess,
    mode: SdkMode,
    queries: Queries,
    calls: int,
    runs: int,
) -> dict[str, Any]:
    """Sequential ``compare()`` calls of one record each, present and absent records mixed."""
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
        values = _latencies(one, calls)
        p50s.append(_percentile(values, 50))
        p99s.append(_percentile(values, 99))
        means.append(statistics.fmean(values))
        maxes.append(values[-1])
        _log(f"  {mode} single record run {run + 1}: p50 {p50s[-1]:.2f} ms, p99 {p99s[-1]:.2f} ms")
    return {
        "calls": calls,
        "p50_ms": statistics.median(p50s),
        "p99_ms": statistics.median(p99s),
        "mean_ms": statistics.median(means),
        "max_ms": max(maxes),
        "p50_ms_runs": p50s,
        "p99_ms_runs": p99s,
        "rpcs": rpc_breakdown(before, server.rpc_counters(), calls * runs),
    }


# ---- OpenMined PSI ---------------------------------------------------------------------------


def ensure_psi_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import private_set_intersection.python"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    _log(f"creating {venv} with openmined-psi=={PSI_VERSION} (its protobuf pin clashes with ours)")
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


# ---- report ----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def render(results: dict[str, Any]) -> str:
    mc, args = results["machine"], results["parameters"]
    n = args["n"]
    lines = [
        "## bidui end-to-end benchmark (SDK -> node over mutual TLS gRPC, audit on)",
        "",
        f"- machine: {mc['cpu']}, {mc['cores']} cores, {mc['os']}",
        f"- Python {mc['python']}, libsodium {mc['libsodium']}, grpcio {mc['grpcio']}, "
        f"protobuf {mc['protobuf']}; bidui {mc['bidui_revision']}",
        f"- date: {mc['date']}; load average at start {mc['load_average_at_start']}, "
        f"at end {results['load_average_at_end']}",
        f"- N = {n:,} provider records; M = {args['m_blinded']:,} (blinded), "
        f"{args['m_hashed']:,} (hashed), half present; {args['latency_calls']:,} single-record "
        f"calls per mode; median of {args['runs']} runs",
        "- node: `bidui provider serve` in its own process; client: `ComparisonClient.compare` "
        f"(max_batch {args['max_batch']:,}); audit log: a fresh SQLite file",
        "",
        "| measurement | result | target | |",
        "| --- | ---: | ---: | --- |",
    ]
    for mode in ("hashed", "blinded"):
        b = results["build"].get(mode)
        if b:
            cached = " (cached build)" if results["build_cached"] else ""
            lines.append(
                f"| index build, {mode}, N = {n:,} (load_resource){cached} | "
                f"{b['seconds']:.1f} s = {n / b['seconds']:,.0f} records/s | | |"
            )
    hashed, blinded = results["hashed"], results["blinded"]
    ok = hashed["items_per_second"] >= TARGET_HASHED_ITEMS_S
    lines.append(
        f"| hashed, M = {hashed['m']:,}, end to end | **{hashed['items_per_second']:,.0f} "
        f"items/s** | >= {TARGET_HASHED_ITEMS_S:,} | {_verdict(ok)} |"
    )
    psi = results.get("psi")
    target = (
        f">= {TARGET_BLINDED_OVER_PSI * psi['items_per_second']:,.0f} (1.5x PSI)" if psi else ""
    )
    verdict = (
        _verdict(blinded["items_per_second"] >= TARGET_BLINDED_OVER_PSI * psi["items_per_second"])
        if psi
        else ""
    )
    lines.append(
        f"| blinded, M = {blinded['m']:,}, end to end | **{blinded['items_per_second']:,.0f} "
        f"items/s** | {target} | {verdict} |"
    )
    if psi:
        ratio = blinded["items_per_second"] / psi["items_per_second"]
        lines.append(
            f"| OpenMined PSI {psi['library'].split()[-1]}, N = {psi['n']:,}, M = {psi['m']:,}: "
            f"request + response + intersection | {psi['items_per_second']:,.0f} items/s | | |"
        )
        lines.append(
            f"| ratio bidui blinded / PSI | **{ratio:.2f}x** | >= {TARGET_BLINDED_OVER_PSI}x | "
            f"{_verdict(ratio >= TARGET_BLINDED_OVER_PSI)} |"
        )
    for label, r in (("hashed", hashed), ("blinded", blinded)):
        lines.append(
            f"| {label}: CPU per item, client + node (cores busy) | "
            f"{r['client_cpu_us_per_item']:.1f} + {r['node_cpu_us_per_item']:.1f} us "
            f"({r['cores_busy']:.2f} of {mc['cores']}) | | |"
        )
    if psi:
        cpu = statistics.median(psi["cpu_seconds"])
        wall = statistics.median(psi["seconds"])
        lines.append(
            f"| PSI: CPU per item, client + server in one process (cores busy) | "
            f"{cpu / psi['m'] * 1e6:.1f} us ({cpu / wall:.2f} of {mc['cores']}) | | |"
        )
    for mode, limit in (("hashed", TARGET_P99_HASHED_MS), ("blinded", TARGET_P99_BLINDED_MS)):
        lat = results[f"latency_{mode}"]
        lines.append(
            f"| single record, {mode}: p50 / p99 | {lat['p50_ms']:.2f} / **{lat['p99_ms']:.2f} "
            f"ms** | p99 <= {limit:g} ms | {_verdict(lat['p99_ms'] <= limit)} |"
        )
    if psi:
        lines.append(
            f"| PSI setup message the client must download (prebuilt, untimed) | "
            f"{psi['setup_bytes'] / 1e6:.2f} MB ({psi['setup_seconds']:.1f} s to build) | | |"
        )
        lines.append(
            f"| PSI request / response bytes for M = {psi['m']:,} | "
            f"{psi['request_bytes'] / 1e3:,.0f} kB / {psi['response_bytes'] / 1e3:,.0f} kB | | |"
        )
    lines += [
        "",
        "Where the time of one `compare()` goes: RPCs it made (from the node's "
        "`bidui_rpc_duration_seconds`) and the node's time inside the gRPC handlers, against the "
        "time the client saw. The rest is the client (canonicalise, HMAC or blind / verify / "
        "finalize), gRPC, TLS and the loopback network.",
        "",
        "| `compare()` of | client-observed | RPCs (node handler mean) | node handlers, total |",
        "| --- | ---: | --- | ---: |",
    ]
    phases = [
        (f"{hashed['m']:,} records, hashed", hashed["ms_per_compare"], hashed["rpcs"]),
        (f"{blinded['m']:,} records, blinded", blinded["ms_per_compare"], blinded["rpcs"]),
    ]
    for mode in ("hashed", "blinded"):
        lat = results[f"latency_{mode}"]
        phases.append((f"1 record, {mode} (mean)", lat["mean_ms"], lat["rpcs"]))
    for label, client_ms, rpcs in phases:
        methods = ", ".join(
            f"{name} x{m['per_compare']:.3g} ({m['mean_ms']:.2f} ms)"
            for name, m in sorted(rpcs["methods"].items())
        )
        lines.append(
            f"| {label} | {client_ms:.2f} ms | {methods} | "
            f"{rpcs['node_handler_ms_per_compare']:.2f} ms |"
        )
    lines += [
        "",
        f"Every answer was checked (exact match count and per-record result). Audit: "
        f"{results['audit']}.",
    ]
    if psi:
        lines.append(
            f"PSI: {psi['library']}, {psi['data_structure']}, fpr {psi['fpr']:g}, "
            "reveal_intersection=True, one process (no network; the request and the response are "
            "serialized and parsed as on the wire)."
        )
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="provider records")
    parser.add_argument("--m-blinded", type=int, default=10_000, help="records, blinded run")
    parser.add_argument("--m-hashed", type=int, default=100_000, help="records, hashed run")
    parser.add_argument("--latency-calls", type=int, default=1000, help="single-record calls")
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
            _log(f"starting `bidui provider serve` on {server.target}")
            results["startup_seconds"] = server.wait_serving(credentials, timeout=600)
            _log(f"  SERVING after {results['startup_seconds']:.1f} s")
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
                _log(f"blinded: {args.m_blinded:,} records x {args.runs}")
                results["blinded"] = throughput(
                    client, server, "blinded", blinded_queries, args.runs
                )
                _log(f"hashed: {args.m_hashed:,} records x {args.runs}")
                results["hashed"] = throughput(client, server, "hashed", hashed_queries, args.runs)
                for mode in SDK_MODES:
                    _log(f"{mode}: {args.latency_calls:,} single-record calls x {args.runs}")
                    results[f"latency_{mode}"] = latency(
                        client, server, mode, blinded_queries, args.latency_calls, args.runs
                    )
        finally:
            code = server.stop()
        if code != 0:
            sys.exit(f"the node exited with code {code}; see the log above")
        results["audit"] = server.verify_audit()
        results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if not args.skip_psi:
            _log(f"OpenMined PSI: N = {args.n:,}, M = {args.m_blinded:,} x {args.runs}")
            results["psi"] = run_psi(node, blinded_queries, args.runs, args.psi_venv, scratch)
            _log(f"  {results['psi']['items_per_second']:,.0f} items/s")
    results["targets"] = targets(results)
    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def targets(results: dict[str, Any]) -> dict[str, bool | None]:
    psi = results.get("psi")
    return {
        "hashed_items_per_second": results["hashed"]["items_per_second"] >= TARGET_HASHED_ITEMS_S,
        "hashed_p99": results["latency_hashed"]["p99_ms"] <= TARGET_P99_HASHED_MS,
        "blinded_p99": results["latency_blinded"]["p99_ms"] <= TARGET_P99_BLINDED_MS,
        "blinded_over_psi": (
            results["blinded"]["items_per_second"]
            >= TARGET_BLINDED_OVER_PSI * psi["items_per_second"]
            if psi
            else None
        ),
    }


if __name__ == "__main__":
    main()
