"""``bidui provider serve`` under systemd's default open-files soft limit (1,024), with more
peers without a certificate holding a TLS handshake open than that: the node raises its soft
limit to the hard one at start, so a department's new connection is served at once instead of
waiting for a descriptor (before: 4.2 s under 1,100 stalled peers, until the node's handshake
timeout closed some). A hard limit too low for that is said at start.

Real ``serve`` processes over real sockets and mutual TLS on loopback; SQLite audit logs."""

from __future__ import annotations

import os
import re
import resource
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from client_sdk import Credentials
from tests.faults.node_process import NodeDir, NodeProcess, make_node_dir
from tests.faults.throwaway_postgres import free_port

SYSTEMD_SOFT = 1024
STALLED = 1100  # more than the soft limit the node starts with
HANDSHAKE_TIMEOUT_S = 60  # longer than the test: a starved accept would wait for it


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    node = make_node_dir(tmp_path / "node", f"sqlite:///{tmp_path / 'node' / 'audit.db'}")
    text = node.config_path.read_text(encoding="utf-8")
    text = text.replace("# [transport]\n", "[transport]\n")
    text = text.replace(
        "# handshake_timeout_seconds = 5", f"handshake_timeout_seconds = {HANDSHAKE_TIMEOUT_S}"
    )
    node.config_path.write_text(text, encoding="utf-8")
    return node


@pytest.fixture
def descriptors_for_the_flood() -> Iterator[None]:
    """This process holds the stalled peers' sockets: its own soft limit goes up meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = STALLED + 1000
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard open-files limit here is {hard}; this test holds {needed} sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def client_hello() -> bytes:
    """A real TLS ClientHello (ALPN h2, no client certificate), as a peer's first flight."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def soft_limit(pid: int) -> int:
    text = Path(f"/proc/{pid}/limits").read_text(encoding="ascii")
    return int(re.search(r"Max open files\s+(\d+)", text).group(1))  # type: ignore[union-attr]


def metrics(node: NodeProcess) -> str:
    port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", node.output())
    assert port, node.output()
    with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10) as r:
        return str(r.read().decode())


def new_connection_served_in(node: NodeDir, target: str, timeout: float) -> float:
    """Seconds a department's new mTLS connection and one health check took."""
    credentials = Credentials.from_files(node.ca_cert, node.client_cert, node.client_key)
    options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own
    started = time.monotonic()
    with grpc.secure_channel(target, credentials.channel_credentials(), options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    return time.monotonic() - started


def test_stalled_peers_past_the_default_soft_limit_keep_no_department_waiting(
    node_dir: NodeDir, descriptors_for_the_flood: None
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    node = NodeProcess(node_dir, free_port(), "serve", open_files=(SYSTEMD_SOFT, hard))
    stalled: list[socket.socket] = []
    try:
        node.start()
        assert soft_limit(node.pid) == hard > SYSTEMD_SOFT
        assert f"open files: soft limit raised from {SYSTEMD_SOFT:,} to {hard:,}" in node.output()
        assert f"process_max_fds {float(hard)}" in metrics(node)

        hello = client_hello()
        for _ in range(STALLED):
            peer = socket.create_connection(("127.0.0.1", node.port), timeout=10)
            peer.sendall(hello)
            stalled.append(peer)
        deadline = time.monotonic() + 30
        while open_descriptors(node.pid) < STALLED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_descriptors(node.pid) >= STALLED  # all held by the node, past 1,024

        # Under the soft limit it started with, this waited for the handshake timeout (60 s).
        assert new_connection_served_in(node_dir, node.target, timeout=10) < 5
        assert "open files are limited" not in node.output()
    finally:
        for peer in stalled:
            peer.close()
        node.close()


def test_a_hard_limit_too_low_is_said_at_start(node_dir: NodeDir) -> None:
    node = NodeProcess(node_dir, free_port(), "serve", open_files=(SYSTEMD_SOFT, SYSTEMD_SOFT))
    try:
        node.start()
        assert soft_limit(node.pid) == SYSTEMD_SOFT
        output = node.output()
        assert "open files are limited to 1,024: a peer without a certificate holds one" in output
        assert "raise the hard limit to at least 8,192 (systemd: LimitNOFILE=65536" in output
        assert "soft limit raised" not in output
        assert new_connection_served_in(node_dir, node.target, timeout=10) < 5  # it serves
    finally:
        node.close()
