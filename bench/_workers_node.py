"""The node of the workers benchmark: ``bidui provider serve --workers W`` in a subprocess.

Its CPU time is the supervisor's plus every worker's (psutil), its items answered are read per
worker from each worker's ``/metrics`` (worker i on its own port), and its memory per worker is
psutil's ``memory_full_info``: RSS, USS (pages only that process holds) and PSS (shared pages
divided among the processes sharing them: the memory-mapped indexes).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil
from _e2e_node import _bidui_command as bidui_command
from _e2e_node import _free_port, forget_checkpoints

_SERVING = re.compile(r"serving on port (\d+) \(mutual TLS\)")
_ONE_METRICS = re.compile(r"metrics on http://[^:]+:(\d+)/metrics")
_MANY_METRICS = re.compile(r"ports ([\d, ]+) \(label worker\)")


class WorkersNode:
    """``bidui provider serve --workers W`` on the node of ``config_path``, with a fresh audit
    log (``audit_url``, or SQLite in ``scratch``); the per-minute item limits are lifted (a
    benchmark is not a department). ``env``: more settings (``BIDUI_…`` variables)."""

    def __init__(
        self,
        config_path: Path,
        workers: int,
        scratch: Path,
        *,
        audit_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config_path = config_path
        self.workers = workers
        self.env = dict(os.environ)
        self.env["BIDUI_AUDIT_DATABASE_URL"] = (
            audit_url or f"sqlite:///{scratch / f'audit-w{workers}.db'}"
        )
        self.env["BIDUI_NODE_MAX_ITEMS_PER_MINUTE"] = "0"
        self.env["BIDUI_NODE_MAX_HASHED_ITEMS_PER_MINUTE"] = "0"
        self.env.update(env or {})
        forget_checkpoints(config_path)
        self.log_path = scratch / f"serve-w{workers}.log"
        self.port = _free_port()
        self.metrics_ports: list[int] = []
        self._log_file = self.log_path.open("wb")
        command = [
            *bidui_command(), "provider", "serve", "--config", str(config_path),
            "--listen", f"127.0.0.1:{self.port}", "--metrics-listen", "127.0.0.1:0",
            "--workers", str(workers),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _log(self) -> str:
        self._log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_serving(self, timeout: float) -> float:
        """Seconds until the node said it serves (every worker); exits with its log on failure."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            text = self._log()
            for line in text.splitlines():
                if not _SERVING.search(line):
                    continue
                many = _MANY_METRICS.search(line)
                if many:
                    self.metrics_ports = [int(p) for p in many[1].split(",")]
                else:
                    one = _ONE_METRICS.search(line)
                    self.metrics_ports = [int(one[1])] if one else []
                return time.perf_counter() - started
            if self.process.poll() is not None:
                sys.exit(f"the node exited with code {self.process.returncode}:\n{text}")
            time.sleep(0.2)
        self.stop()
        sys.exit(f"the node was not serving after {timeout:.0f} s:\n{self._log()}")

    def _processes(self) -> list[psutil.Process]:
        parent = psutil.Process(self.process.pid)
        return [parent, *parent.children()]

    def worker_processes(self) -> list[psutil.Process]:
        processes = self._processes()
        return processes if self.workers == 1 else processes[1:]

    def cpu_seconds(self) -> float:
        """CPU time (user + system, all threads) of the supervisor and its workers so far."""
        total = 0.0
        for process in self._processes():
            times = process.cpu_times()
            total += times.user + times.system
        return total

    def items_per_worker(self) -> list[float]:
        """``bidui_comparison_items_total`` of each worker, from its own /metrics."""
        out = []
        for port in self.metrics_ports:
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            out.append(
                sum(
                    float(line.rpartition(" ")[2])
                    for line in text.splitlines()
                    if line.startswith("bidui_comparison_items_total{")
                )
            )
        return out

    def memory(self) -> list[dict[str, Any]]:
        """RSS, USS and PSS of each worker process, in bytes."""
        out = []
        for process in self.worker_processes():
            info = process.memory_full_info()
            out.append({"pid": process.pid, "rss": info.rss, "uss": info.uss, "pss": info.pss})
        return out

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        if self.process.returncode != 0:
            sys.exit(f"the node exited with code {self.process.returncode}:\n{self._log()}")
        return self.process.returncode

    def verify_audit(self) -> str:
        """``bidui audit verify`` on this run's audit database: its one-line answer."""
        done = subprocess.run(
            [*bidui_command(), "audit", "verify", "--config", str(self.config_path)],
            env=self.env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"audit verify failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done.stdout.strip()
