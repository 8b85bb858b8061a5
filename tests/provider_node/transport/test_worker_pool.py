"""The worker pool of ``serve --workers`` with stand-in workers (forked, no grpc): start-up
reports, a forwarded signal stopping each worker through its own ``stop``, a start-up failure
named once; the port's reservation; the ``worker`` label on every series."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from provider_node.transport.server import SignalWaiter, TransportLimits
from provider_node.transport.workers import (
    WorkerError,
    WorkerExit,
    WorkerPool,
    WorkerSlot,
    reserved_port,
    worker_registry,
)


@pytest.fixture
def signals() -> Iterator[SignalWaiter]:
    """A real SignalWaiter (the workers inherit its handlers); the test's own ones restored."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield SignalWaiter()
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@dataclass
class StandIn:
    """What a worker's node looks like to the pool; ``stop`` leaves a file saying it ran."""

    folder: Path
    slot: WorkerSlot
    port: int = 0
    metrics_port: int = 0

    def stop(self) -> None:
        (self.folder / f"stopped-{self.slot.index}").write_text(self.slot.metrics_listen)


def _pool(tmp_path: Path, signals: SignalWaiter, lines: list[str], fail: int = -1) -> WorkerPool:
    def start(slot: WorkerSlot) -> StandIn:
        if slot.index == fail:
            raise RuntimeError("no index for resource 'residents'\nsecond line")
        return StandIn(tmp_path, slot, int(slot.listen.rpartition(":")[2]), 9000 + slot.index)

    return WorkerPool(
        3, "127.0.0.1:0", "127.0.0.1:9464", start, signals, report=lines.append, stop_timeout=30
    )


def test_a_signal_is_forwarded_and_every_worker_stops_through_its_own_stop(
    tmp_path: Path, signals: SignalWaiter
) -> None:
    lines: list[str] = []
    pool = _pool(tmp_path, signals, lines)
    served: list[int] = []

    def serving(running: WorkerPool) -> None:
        served.extend(running.metrics_ports)
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()

    pool.run(on_serving=serving)
    assert served == [9000, 9001, 9002]
    assert lines[0].startswith("worker 0 (pid ") and f"serving on port {pool.port};" in lines[0]
    assert "received SIGTERM; stopping 3 workers gracefully" in lines
    assert sum(line.endswith(") stopped") for line in lines) == 3
    # Worker i was told the metrics port + i, and stopped through its own stop().
    for index in range(3):
        assert (tmp_path / f"stopped-{index}").read_text() == f"127.0.0.1:{9464 + index}"


def test_a_start_up_failure_is_named_once_and_the_others_are_not_started(
    tmp_path: Path, signals: SignalWaiter
) -> None:
    lines: list[str] = []
    with pytest.raises(WorkerError) as failed:
        _pool(tmp_path, signals, lines, fail=0).run()
    assert str(failed.value) == "worker 0 could not start: no index for resource 'residents'"
    assert lines == [] and not list(tmp_path.iterdir())


def test_a_later_worker_failing_stops_the_started_ones(
    tmp_path: Path, signals: SignalWaiter
) -> None:
    lines: list[str] = []
    with pytest.raises(WorkerError, match=r"^worker 2 could not start: no index"):
        _pool(tmp_path, signals, lines, fail=2).run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stopped-0", "stopped-1"]


def test_bad_pools_are_refused(signals: SignalWaiter) -> None:
    def start(slot: WorkerSlot) -> StandIn:
        raise AssertionError("never started")

    with pytest.raises(ValueError, match="at least 2"):
        WorkerPool(1, "127.0.0.1:0", "127.0.0.1:0", start, signals, report=print, stop_timeout=1)
    with pytest.raises(ValueError, match="go past 65535"):
        WorkerPool(4, "127.0.0.1:0", "127.0.0.1:65533", start, signals, report=print,
                   stop_timeout=1)  # fmt: skip


def test_the_port_is_held_for_the_workers_and_refused_to_anyone_listening_there() -> None:
    with reserved_port("127.0.0.1:0") as port:
        assert port > 0
        # A worker (SO_REUSEPORT) can listen beside the reservation...
        with socket.socket() as worker:
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", port))
            worker.listen()
            # ...and once one listens, another pool on the port is refused.
            with (
                pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: .*another node"),
                reserved_port(f"127.0.0.1:{port}"),
            ):
                pass
        # A socket without SO_REUSEPORT (a single-process node) cannot share it.
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))
            other.listen()


def test_only_workers_share_the_port() -> None:
    assert ("grpc.so_reuseport", 0) in TransportLimits().options()
    assert ("grpc.so_reuseport", 1) in TransportLimits(reuse_port=True).options()


class _ReadAtScrape(Collector):
    """Like ApplicationsCollector: a custom collector whose values are read at scrape time."""

    def __init__(self) -> None:
        self.value = 1.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("bidui_applications_pending", "pending", labels=["x"])
        family.add_metric(["y"], self.value)
        yield family


def test_every_series_of_a_worker_is_labelled_with_its_index() -> None:
    registry = CollectorRegistry()
    counter = Counter("bidui_things", "things", ["mode"], registry=registry)
    counter.labels("hashed").inc(3)
    custom = _ReadAtScrape()
    registry.register(custom)
    served = worker_registry(registry, 1)
    custom.value = 7.0  # read when scraped, not when wrapped
    text = generate_latest(served).decode()
    assert 'bidui_things_total{mode="hashed",worker="1"} 3.0' in text
    assert 'bidui_applications_pending{worker="1",x="y"} 7.0' in text or (
        'bidui_applications_pending{x="y",worker="1"} 7.0' in text
    )
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples and all('worker="1"' in line for line in samples)


def test_exits_are_described_for_the_operator() -> None:
    assert WorkerExit(1, 42, 0).describe() == "worker 1 (pid 42) stopped"
    assert WorkerExit(1, 42, 3).describe() == "worker 1 (pid 42) exited with code 3"
    assert (
        WorkerExit(0, 7, -9, expected=False).describe()
        == "worker 0 (pid 7) was killed by SIGKILL unexpectedly"
    )
    assert (
        WorkerExit(0, 7, None).describe() == "worker 0 (pid 7) did not stop in time and was killed"
    )
    assert not WorkerExit(0, 7, 0, expected=False).ok
