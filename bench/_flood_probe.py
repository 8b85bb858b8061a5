"""What ``bench/flood.py`` watches: the node process, its audit database and /metrics, and the
attacker process (``_flood_attacker.py``) with its running counts."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

ATTACKER = Path(__file__).with_name("_flood_attacker.py")
HANDSHAKE_METRIC = "bidui_tls_handshake_failures_total"


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _thread_names(process: psutil.Process) -> dict[int, str]:
    names: dict[int, str] = {}
    for thread in process.threads():
        with contextlib.suppress(OSError):
            comm = Path(f"/proc/{process.pid}/task/{thread.id}/comm").read_text().strip()
            names[thread.id] = re.sub(r"[_-]?\d+$", "", comm) or comm  # pool members as one
    return names


class Window:
    """A process's CPU, RSS, descriptors and busiest threads from ``__init__`` to ``finish``."""

    def __init__(self, process: psutil.Process, *, every: float = 0.25) -> None:
        self.process = process
        self._t0 = time.monotonic()
        self._cpu0 = _cpu_seconds(process)
        self._threads0 = {t.id: t.user_time + t.system_time for t in process.threads()}
        self._rss: list[int] = []
        self._fds: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self, every: float) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self._rss.append(self.process.memory_info().rss)
                self._fds.append(self.process.num_fds())
            if self._stop.wait(every):
                return

    def finish(self, *, threads: int = 4) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        seconds = time.monotonic() - self._t0
        busy: Counter[str] = Counter()
        names = _thread_names(self.process)
        for t in self.process.threads():
            spent = t.user_time + t.system_time - self._threads0.get(t.id, 0.0)
            busy[names.get(t.id, str(t.id))] += spent
        return {
            "seconds": seconds,
            "cpu_percent": (_cpu_seconds(self.process) - self._cpu0) / seconds * 100,
            "threads_cpu_percent": {
                name: round(spent / seconds * 100, 1)
                for name, spent in busy.most_common(threads)
                if spent > 0
            },
            "rss_mib_max": max(self._rss, default=0) / 2**20,
            "fds_max": max(self._fds, default=0),
            "fds_mean": statistics.fmean(self._fds) if self._fds else 0.0,
        }


def scrape(metrics_port: int) -> dict[str, Any]:
    """The node's /metrics: the handshake-failure series (if any) and the refusal counters."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    series: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith((HANDSHAKE_METRIC, "bidui_refusals_total")):
            name, _, value = line.rpartition(" ")
            series[name] = float(value)
    present = HANDSHAKE_METRIC.removesuffix("_total") in text
    return {"handshake_metric_present": present, "series": series}


def audit_counts(database: Path) -> dict[str, int]:
    """Audit records by ``requester|action|mode|outcome``, read through a read-only connection."""
    uri = f"file:{database}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT requester, action, mode, outcome, COUNT(*) FROM audit_record"
            " GROUP BY requester, action, mode, outcome"
        ).fetchall()
    return {"|".join(str(part) for part in row[:4]): int(row[4]) for row in rows}


def audit_difference(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    keys = sorted(set(before) | set(after))
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in keys if after.get(k, 0) != before.get(k, 0)
    }


class AttackerProcess:
    """``_flood_attacker.py`` in its own process; its JSON lines, kept with their arrival time."""

    def __init__(
        self,
        port: int,
        ca: Path,
        connections: int,
        slow: int,
        *,
        nice: int = 0,
        stall: bool = False,
    ) -> None:
        command = [
            sys.executable, str(ATTACKER), "--port", str(port), "--ca", str(ca),
            "--connections", str(connections), "--slow", str(slow), "--report-every", "0.25",
            *(["--stall"] if stall else []),
        ]  # fmt: skip
        self.connections, self.slow = connections, slow
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.psutil = psutil.Process(self.process.pid)
        if nice:
            self.psutil.nice(nice)
        self.samples: list[tuple[float, dict[str, Any]]] = []
        self.first: dict[str, Any] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if "fd_limit" in record:
                    self.first = record
                else:
                    self.samples.append((time.monotonic(), record))

    def latest(self) -> dict[str, Any]:
        return self.samples[-1][1] if self.samples else {}

    def wait_ramped(self, timeout: float, slow_cycles: int = 1) -> float:
        """Until every peer is in flight and each slow peer was closed ``slow_cycles`` times."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                sys.exit(f"the attacker exited with code {self.process.returncode}")
            last = self.latest()
            if (
                last.get("tls_in_flight", 0) >= self.connections
                and last.get("slow_open", 0) >= self.slow
                and last.get("slow_closed", 0) >= self.slow * slow_cycles
            ):
                break
            time.sleep(0.25)
        return time.monotonic() - started

    def summary(self, start: float, end: float) -> dict[str, Any]:
        """Counts over [start, end] (monotonic): peers open or in flight, rates, errors."""
        window = [s for t, s in self.samples if start <= t <= end]
        if len(window) < 2:
            return {"samples": len(window)}
        first, last = window[0], window[-1]
        seconds = float(last["t"] - first["t"])

        def rate(key: str) -> float:
            return float(last["totals"].get(key, 0) - first["totals"].get(key, 0)) / seconds

        in_flight = [s["tls_in_flight"] for s in window]
        slow = [s["slow_open"] for s in window]
        return {
            "samples": len(window),
            "seconds": seconds,
            "tls_in_flight_mean": statistics.fmean(in_flight),
            "tls_in_flight_min": min(in_flight),
            "tls_held_mean": statistics.fmean(s["tls_held"] for s in window),
            "slow_open_mean": statistics.fmean(slow),
            "slow_open_min": min(slow),
            "tls_attempts_per_s": rate("tls_attempts"),
            "tls_refused_per_s": rate("tls_closed_by_node") + rate("tls_refused_by_node"),
            "tls_failed_per_s": rate("tls_failed"),
            "slow_closed_per_s": rate("slow_closed_by_node"),
        }

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then the attacker's last line (its totals)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=10)
        final = self.latest()
        return {
            "fd_limit": self.first.get("fd_limit"),
            "totals": final.get("totals", {}),
            "errors": final.get("errors", {}),
            "slow_closed": final.get("slow_closed", 0),
            "slow_hold_mean_s": final.get("slow_hold_mean_s"),
            "slow_hold_max_s": final.get("slow_hold_max_s"),
            "exit_code": self.process.returncode,
        }


def merge_windows(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Windows of several rounds: mean CPU (process and per thread), largest RSS and fds."""
    threads: Counter[str] = Counter()
    for w in windows:
        threads.update(w["threads_cpu_percent"])
    return {
        "rounds": len(windows),
        "seconds": sum(w["seconds"] for w in windows),
        "cpu_percent": statistics.fmean(w["cpu_percent"] for w in windows),
        "threads_cpu_percent": {n: p / len(windows) for n, p in threads.most_common(4)},
        "rss_mib_max": max(w["rss_mib_max"] for w in windows),
        "fds_max": max(w["fds_max"] for w in windows),
        "fds_mean": statistics.fmean(w["fds_mean"] for w in windows),
    }


def merge_attacker_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The attacker's rounds: means of the window means, minimums, summed totals and errors."""
    windows = [r["window"] for r in rounds if r["window"].get("samples", 0) >= 2]
    window: dict[str, Any] = {"samples": sum(w["samples"] for w in windows)}
    for key in windows[0] if windows else ():
        values = [w[key] for w in windows]
        window[key] = min(values) if key.endswith("_min") else statistics.fmean(values)
    totals: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for r in rounds:
        totals.update(r["totals"])
        errors.update(r["errors"])
    holds = [(r["slow_hold_mean_s"], r["slow_closed"]) for r in rounds if r["slow_closed"]]
    closed = sum(n for _, n in holds)
    return {
        "fd_limit": rounds[0]["fd_limit"],
        "window": window,
        "totals": dict(totals),
        "errors": dict(errors),
        "slow_closed": closed,
        "slow_hold_mean_s": sum(m * n for m, n in holds) / closed if closed else None,
        "slow_hold_max_s": max((r["slow_hold_max_s"] or 0.0 for r in rounds), default=None),
        "ramp_seconds": [r["ramp_seconds"] for r in rounds],
        "exit_codes": [r["exit_code"] for r in rounds],
    }
