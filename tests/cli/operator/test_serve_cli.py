"""``bidui provider serve --workers``: a worker count it cannot run is refused in one line,
before anything starts (the multi-worker node itself: tests/integration/test_workers.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from provider_node.setup.bootstrap import init_node
from tests.cli.running import provider, refused


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Path]:
    """A node's configuration; the signal handlers ``serve`` installs are undone afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield init_node(tmp_path).config_path
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("count", ["0", "-1", "257", "two", ""])
def test_a_worker_count_out_of_range_is_refused(config: Path, count: str) -> None:
    line = refused(provider(config, "serve", "--workers", count))
    assert "'--workers'" in line and "bidui provider serve --help" in line


def test_transport_workers_out_of_range_is_refused(config: Path) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("# [transport]\n", "[transport]\nworkers = 0\n"))
    line = refused(provider(config, "serve"))
    assert "transport.workers: must be between 1 and 256, got 0" in line


def test_metrics_ports_past_the_last_port_are_refused(config: Path) -> None:
    result = provider(config, "serve", "--workers", "3", "--metrics-listen", "127.0.0.1:65534")
    assert refused(result) == (
        "error: cannot start 3 workers: metrics ports 65534+0..2 go past 65535"
    )


@pytest.mark.parametrize("address", ["0.0.0.0:9464", "[::]:9464", "192.0.2.1:9464"])
def test_the_metrics_flag_cannot_open_them_beyond_this_machine(config: Path, address: str) -> None:
    line = refused(provider(config, "serve", "--metrics-listen", address))
    assert "listens beyond this machine" in line and "metrics_expose" in line


def test_a_world_readable_server_key_stops_serve(config: Path) -> None:
    key = config.parent / "pki" / "node.key"
    key.chmod(0o644)
    line = refused(provider(config, "serve"))
    assert f"run `chmod 600 {key}`" in line
