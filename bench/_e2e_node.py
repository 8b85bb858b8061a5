"""The provider node of the end-to-end benchmark: its folder, built once, and its process.

:func:`prepare_node` makes (or reuses) a node folder with ``bidui provider init``'s layout, a
SQLite source table of N synthetic residents and both ``id_number`` match indexes, built with
``provider_node.resources.loader`` so that the build time is the index-build throughput at N.
:class:`ServerProcess` runs ``bidui provider serve`` in a subprocess (its own GIL, as deployed)
with a fresh audit log, and reads its CPU time and RPC metrics for the measurements.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from _e2e_scenario import PROVIDER, REQUESTER, RESOURCE, IdFactory, log, resident_names
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client_sdk import Credentials
from provider_node.audit.checkpoints import CHECKPOINT_FILE
from provider_node.config import load_config
from provider_node.core.vocabulary import ComparisonMode, OprfMode
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import load_indexes, load_resource
from provider_node.resources.source import LoaderError
from provider_node.setup.bootstrap import init_node

CACHE_FORMAT = 2  # 2: blinded indexes per RFC 9497 mode (blinded, blinded-voprf)
OPRF_MODES_LINE = 'oprf_modes = ["oprf"]'
OPRF_MODES_BENCH = 'oprf_modes = ["oprf", "voprf"]'

# The id_number-only comparison key replaces the example keys of `bidui provider init`.
KEYS_LINE = 'keys = { "id_number" = ["id_number"], "id_number+name" = ["id_number", "name"] }'
KEYS_LINE_BENCH = 'keys = { "id_number" = ["id_number"] }'


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


def _indexes_servable(config_path: Path) -> bool:
    """Whether ``serve`` would take the cached indexes (same keys, same canonical encoding)."""
    config = load_config(config_path)
    keys = NodeKeys.load(config.keys.dir)
    try:
        for resource in build_catalog(config).values():
            load_indexes(resource, config, keys)
    except LoaderError:
        return False
    return True


def prepare_node(directory: Path, n: int, seed: int) -> Node:
    """The node in ``directory``: reused when a complete build for (n, seed) is there."""
    meta_path = directory / "bench-e2e.json"
    config_path, ca_cert, client_cert, client_key = _node_paths(directory)
    server_items = directory / "server_items.txt"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        wanted = {"format": CACHE_FORMAT, "n": n, "seed": seed}
        same = all(meta.get(name) == value for name, value in wanted.items())
        if same and not _indexes_servable(config_path):
            log(f"the indexes in {directory} were built by an older bidui: rebuilding the node")
            same = False
        if same:
            log(f"reusing the node built in {directory} ({meta['built_at']})")
            return Node(
                directory, config_path, ca_cert, client_cert, client_key, server_items,
                meta["build"], cached=True,
            )  # fmt: skip
    if directory.exists():
        if not (meta_path.exists() or (directory / "node.toml").exists()):
            sys.exit(f"{directory} exists and is not a bench/e2e.py node; choose another --workdir")
        log(f"removing the stale or incomplete node in {directory}")
        shutil.rmtree(directory)

    log(f"creating the node in {directory}")
    init = init_node(directory, department=PROVIDER, clients=(REQUESTER,))
    text = init.config_path.read_text(encoding="utf-8")
    if KEYS_LINE not in text or OPRF_MODES_LINE not in text:
        sys.exit("the node.toml template changed: update KEYS_LINE or OPRF_MODES_LINE in bench")
    text = text.replace(KEYS_LINE, KEYS_LINE_BENCH).replace(OPRF_MODES_LINE, OPRF_MODES_BENCH)
    init.config_path.write_text(text, encoding="utf-8")

    log(f"generating {n:,} synthetic residents")
    t0 = time.perf_counter()
    ids = IdFactory(seed).take(n)
    rng = random.Random(seed + 1)
    births = (f"{i[6:10]}-{i[10:12]}-{i[12:14]}" for i in ids)
    with contextlib.closing(sqlite3.connect(init.source_db)) as db:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.executemany(
            "INSERT INTO residents VALUES (?, ?, ?)",
            zip(ids, resident_names(n, rng), births, strict=True),
        )
        db.commit()
    server_items.write_text("\n".join(ids) + "\n", encoding="utf-8")
    generate_seconds = time.perf_counter() - t0
    log(f"  {generate_seconds:.1f} s")

    config = load_config(init.config_path)
    keys = NodeKeys.load(config.keys.dir)
    resource = build_catalog(config)[RESOURCE]
    build: dict[str, Any] = {"generate_seconds": generate_seconds}
    builds = (
        ("hashed", ComparisonMode.HASHED, OprfMode.OPRF),
        ("blinded", ComparisonMode.BLINDED, OprfMode.OPRF),
        ("blinded-voprf", ComparisonMode.BLINDED, OprfMode.VOPRF),
    )
    for mode, comparison_mode, oprf_mode in builds:
        log(f"building the {mode} index of {n:,} records (load_resource)")
        one = dataclasses.replace(resource, modes=(comparison_mode,), oprf_modes=(oprf_mode,))
        report = load_resource(one, config, keys)
        (index,) = report.indexes
        if index.records != n or report.invalid_rows:
            sys.exit(f"{mode} index: {index.records} records, {report.invalid_rows} invalid")
        build[str(mode)] = {"seconds": report.seconds, "records": index.records}
        log(f"  {report.seconds:.1f} s, {n / report.seconds:,.0f} records/s")
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
    return [sys.executable, "-c", "import sys; from bidui_cli.main import main; sys.exit(main())"]


def forget_checkpoints(config_path: Path) -> None:
    """Remove the signed audit checkpoints a previous run's node left in the cached node folder.

    The node signs its audit chain head into ``data_dir`` at every graceful stop; each run's audit
    database is fresh, so those checkpoints vouch for a log that no longer exists and ``bidui
    audit verify`` would report this run's log as cut."""
    (config_path.parent / "data" / CHECKPOINT_FILE).unlink(missing_ok=True)


class ServerProcess:
    """``bidui provider serve`` in a subprocess, audit log in ``audit_dir``."""

    def __init__(self, node: Node, audit_dir: Path) -> None:
        forget_checkpoints(node.config_path)
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
