"""One node as several worker processes on one port (``bidui provider serve --workers N``).

A Python gRPC server answers with one interpreter, so one process uses about one core. grpc's own
answer (``examples/python/multiprocessing``) is N processes each with its own server on the same
address (``SO_REUSEPORT``; the kernel spreads new connections over them), forked before any grpc
object exists in the parent, which never makes one::

    parent (supervisor: no grpc object, no thread)      worker i (forked, its own interpreter)
    ---------------------------------------------       ----------------------------------------
    the port free? (else another node has it: refuse)
    hold it with SO_REUSEPORT (port 0: pick one)
    fork worker 0, wait until it serves ─────────────>  open_node: keys, indexes (mmap), store
    fork workers 1..N-1, wait until they serve ──────>  grpc server, so_reuseport=1, same port
    wait for a signal or a worker's death               serve until SIGTERM or SIGINT
    SIGTERM/SIGINT: forward it to every worker ──────>  StartedNode.stop: the safe order; exit 0
    exit 0 once all stopped; else name the worker

Worker 0 starts alone first: it creates what a first start creates (the checkpoint key, the
schema), and a start-up error is reported once, not N times.

Shared by the workers: the indexes (each maps the same files, so the 32-byte entries sit once in
the page cache; only the 4-byte search prefixes are each worker's own) and the database: the one
audit chain (SQLite ``BEGIN IMMEDIATE``, PostgreSQL a row lock on the chain head), limits, grants,
revocations. Each worker's own: its open blinded comparisons (a client's channel keeps its
connection, so both steps reach the same worker; a client that reconnects to another worker in
between is refused ``FAILED_PRECONDITION`` at step 2 and the SDK starts again from step 1), the
session caps, which hold per worker, and its metrics: worker i serves its own registry on the
metrics port + i, every series labelled ``worker="i"`` (``WorkerLabel``). prometheus_client's
multiprocess mode would give one endpoint, but it merges only its own metric types through files,
and the collectors that read at scrape time (applications from the database, index age, refused
handshakes) would need a process of their own; N scrape targets keep every collector as it is.

A worker that dies unexpectedly is reported, the others are stopped and the parent exits
non-zero naming it: restarting it alone would hide a crash that repeats; the service manager
(systemd ``Restart=on-failure``) restarts the whole node, with its rate limit. A worker whose
parent dies (kill -9) stops itself gracefully: it watches a pipe only the parent holds open.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from provider_node.config import parse_address
from provider_node.transport.server import SignalWaiter

__all__ = [
    "RunningWorker",
    "WorkerError",
    "WorkerExit",
    "WorkerLabel",
    "WorkerPool",
    "WorkerSlot",
    "reserved_port",
    "worker_registry",
]

_POLL_S = 0.25
_NOT_HERE = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}  # an address this machine does not have


class WorkerLabel(Collector):
    """Everything ``registry`` exports, each sample labelled ``worker="<index>"``: the series of
    the workers stay apart when one Prometheus job scrapes them all."""

    def __init__(self, registry: CollectorRegistry, worker: int) -> None:
        self._registry = registry
        self._worker = str(worker)

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            labelled = copy.copy(metric)
            labelled.samples = [
                Sample(s.name, {**s.labels, "worker": self._worker}, *s[2:]) for s in metric.samples
            ]
            yield labelled


def worker_registry(registry: CollectorRegistry, worker: int) -> CollectorRegistry:
    """A registry serving ``registry`` with the ``worker`` label, read at scrape time."""
    served = CollectorRegistry(auto_describe=False)  # never collects at registration
    served.register(WorkerLabel(registry, worker))
    return served


@dataclass(frozen=True)
class WorkerSlot:
    """What one worker is told: its index, the shared address, its own metrics address."""

    index: int
    listen: str
    metrics_listen: str


class RunningWorker(Protocol):
    """A started worker's node, as the pool sees it."""

    @property
    def port(self) -> int: ...

    @property
    def metrics_port(self) -> int: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class WorkerExit:
    index: int
    pid: int
    code: int | None  # None: it did not stop in time and was killed
    expected: bool = True

    @property
    def ok(self) -> bool:
        return self.expected and self.code == 0

    def describe(self) -> str:
        who = f"worker {self.index} (pid {self.pid})"
        if self.code is None:
            return f"{who} did not stop in time and was killed"
        if self.code < 0:
            how = f"was killed by {signal.Signals(-self.code).name}"
        else:
            how = "stopped" if self.code == 0 else f"exited with code {self.code}"
        return f"{who} {how}{'' if self.expected else ' unexpectedly'}"


class WorkerError(Exception):
    """A worker could not start, died, or did not stop cleanly; the message names it."""


def _with_port(address: str, port: int) -> str:
    return f"{address.rpartition(':')[0]}:{port}"


@contextlib.contextmanager
def reserved_port(address: str) -> Iterator[int]:
    """Hold ``address``'s port for the workers (port 0: pick one) and yield it.

    First a bind without SO_REUSEPORT: it fails if anything listens there, another node above
    all (which, with its own reuse-port workers, would otherwise silently share the traffic).
    Then sockets with SO_REUSEPORT are bound, never listened on, and held until the pool is done:
    only sockets that also set it (the workers') can join them, and they receive no connections.
    Every address the host resolves to that this machine has is checked and held.
    """
    host, port = parse_address(address)
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    usable: list[tuple[int, int, str]] = []
    for family, kind, _, _, sockaddr in found:
        try:
            with socket.socket(family, kind) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(sockaddr)
        except OSError as problem:
            if problem.errno in _NOT_HERE:
                continue  # e.g. ::1 on a machine without IPv6: grpc leaves it out too
            raise OSError(
                f"cannot listen on {address}: {problem.strerror} (another node?)"
            ) from None
        if (family, kind, str(sockaddr[0])) not in usable:
            usable.append((family, kind, str(sockaddr[0])))
    if not usable:
        raise OSError(f"cannot listen on {address}: no address of it is usable here")
    with contextlib.ExitStack() as held:
        for family_number, kind_number, where in usable:
            holder = held.enter_context(socket.socket(family_number, kind_number))
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind((where, port))
            port = int(holder.getsockname()[1])  # port 0: the first picks, the others follow
        yield port


def _watch_parent(lifeline: Connection) -> None:
    """Stop this worker gracefully once the parent is gone (the pipe's only writer closed)."""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()
    os.kill(os.getpid(), signal.SIGTERM)


def _one_line(problem: BaseException) -> str:
    text = str(problem).strip() or type(problem).__name__
    return text.splitlines()[0]


def _worker_main(
    slot: WorkerSlot,
    start: Callable[[WorkerSlot], RunningWorker],
    signals: SignalWaiter,
    ready: Connection,
    lifeline: tuple[Connection, Connection],
) -> None:
    """The forked worker: start, say so, serve until a signal, stop in the safe order."""
    watch, parent_end = lifeline
    parent_end.close()  # only the parent may hold the writing end open
    threading.Thread(
        target=_watch_parent, args=(watch,), name="bidui-parent-watch", daemon=True
    ).start()
    try:
        worker = start(slot)
    except Exception as problem:
        ready.send(("failed", _one_line(problem)))
        sys.exit(2)
    ready.send(("ready", worker.port, worker.metrics_port))
    ready.close()
    signals.wait()  # the handlers of the parent's SignalWaiter, inherited: this process's own now
    worker.stop()


class WorkerPool:
    """Runs ``count`` forked workers of ``start`` on ``listen`` until a signal or a death.

    ``report`` receives one line per event (a worker ready, stopped, dead). ``run`` returns when
    every worker stopped cleanly and raises ``WorkerError`` otherwise.
    """

    def __init__(
        self,
        count: int,
        listen: str,
        metrics_listen: str,
        start: Callable[[WorkerSlot], RunningWorker],
        signals: SignalWaiter,
        *,
        report: Callable[[str], None],
        stop_timeout: float,
    ) -> None:
        if count < 2:
            raise ValueError("a worker pool has at least 2 workers")
        _, metrics_port = parse_address(metrics_listen)
        if metrics_port and metrics_port + count - 1 > 65535:
            raise ValueError(f"metrics ports {metrics_port}+0..{count - 1} go past 65535")
        self._count = count
        self._listen = listen
        self._metrics_listen = metrics_listen
        self._start = start
        self._signals = signals
        self._report = report
        self._stop_timeout = stop_timeout
        self._context = multiprocessing.get_context("fork")
        self._processes: list[BaseProcess] = []
        self._described: set[int] = set()  # workers whose failure is already in the report
        self.port = 0
        self.metrics_ports: list[int] = []

    def run(self, on_serving: Callable[[WorkerPool], None] = lambda pool: None) -> None:
        """Start the workers (``on_serving`` once all serve), supervise them, stop them."""
        with reserved_port(self._listen) as port:
            self.port = port
            watch, parent_end = self._context.Pipe(duplex=False)
            try:
                failure = self._start_all(_with_port(self._listen, port), (watch, parent_end))
                if failure is None:
                    if not self._signals.wait(0):
                        on_serving(self)
                    failure = self._supervise()  # at once when a signal came during start-up
            finally:
                exits = self._stop_all()
                parent_end.close()
                watch.close()
        problems = [e.describe() for e in exits if not e.ok and e.index not in self._described]
        if failure is not None:
            problems.insert(0, failure)
        if problems:
            raise WorkerError("; ".join(dict.fromkeys(problems)))

    def _slot(self, index: int, address: str) -> WorkerSlot:
        host_port = self._metrics_listen
        _, first = parse_address(host_port)
        return WorkerSlot(index, address, _with_port(host_port, first + index if first else 0))

    def _start_all(self, address: str, lifeline: tuple[Connection, Connection]) -> str | None:
        """Fork worker 0 and wait until it serves, then the others; a failure's description."""
        self.metrics_ports = [0] * self._count
        for batch in ([0], list(range(1, self._count))):
            pending: dict[int, Connection] = {}
            for index in batch:
                if self._signals.wait(0):
                    return None  # stopping before all started: the started ones stop
                ready, child_end = self._context.Pipe(duplex=False)
                process = self._context.Process(
                    target=_worker_main,
                    args=(self._slot(index, address), self._start, self._signals, child_end,
                          lifeline),
                    name=f"bidui-worker-{index}",
                )  # fmt: skip
                process.start()
                child_end.close()
                self._processes.append(process)
                pending[index] = ready
            failure = self._await_ready(pending)
            if failure is not None:
                return failure
        return None

    def _await_ready(self, pending: dict[int, Connection]) -> str | None:
        while pending:
            if self._signals.wait(0):
                return None
            sentinels = {self._processes[i].sentinel: i for i in pending}
            for ready in wait([*pending.values(), *sentinels], timeout=_POLL_S):
                if isinstance(ready, int):
                    index = sentinels[ready]
                else:
                    index = next(i for i, c in pending.items() if c is ready)
                if index in pending:
                    failure = self._readiness(index, pending.pop(index))
                    if failure is not None:
                        self._described.add(index)
                        return failure
        return None

    def _readiness(self, index: int, connection: Connection) -> str | None:
        """Read worker ``index``'s report: None when it serves, else why it did not start."""
        process = self._processes[index]
        try:
            message: tuple[object, ...] = connection.recv() if connection.poll() else ("exited",)
        except (EOFError, OSError):
            message = ("exited",)
        connection.close()
        if message[0] == "ready":
            port, metrics_port = int(str(message[1])), int(str(message[2]))
            self.metrics_ports[index] = metrics_port
            self._report(
                f"worker {index} (pid {process.pid}) serving on port {port}; "
                f"metrics port {metrics_port}"
            )
            return None
        if message[0] == "failed":
            return f"worker {index} could not start: {message[1]}"
        process.join(5)
        return f"worker {index} (pid {process.pid}) exited while starting"

    def _supervise(self) -> str | None:
        """Wait for a signal (None: a clean stop) or a worker's death (its description)."""
        sentinels = {p.sentinel: i for i, p in enumerate(self._processes)}
        while True:
            number = self._signals.wait(0)
            if number:
                name = signal.Signals(number).name
                self._report(f"received {name}; stopping {self._count} workers gracefully")
                return None
            dead = wait(list(sentinels), timeout=_POLL_S)
            if dead:
                index = sentinels[dead[0]]  # type: ignore[index]
                process = self._processes[index]
                self._described.add(index)
                process.join()
                description = WorkerExit(
                    index, process.pid or 0, process.exitcode, expected=False
                ).describe()
                self._report(f"{description}; stopping the other workers")
                return description

    def _stop_all(self) -> list[WorkerExit]:
        """Forward the signal received (SIGTERM if none) to every live worker; wait for each."""
        number = signal.Signals(self._signals.number or signal.SIGTERM)
        for process in self._alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid or 0, number)
        deadline = time.monotonic() + self._stop_timeout
        exits: list[WorkerExit] = []
        for index, process in enumerate(self._processes):
            process.join(max(0.0, deadline - time.monotonic()))
            code = process.exitcode
            if code is None:
                process.kill()
                process.join()
            exit_ = WorkerExit(index, process.pid or 0, code)
            if exit_.ok:
                self._report(exit_.describe())
            exits.append(exit_)
        return exits

    def _alive(self) -> Iterable[BaseProcess]:
        return [p for p in self._processes if p.is_alive()]
