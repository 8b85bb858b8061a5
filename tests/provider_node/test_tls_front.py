"""The TLS front relays gRPC faithfully: big messages, many clients, identities per connection."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from provider_node.pki import create_ca, issue_client_cert, issue_server_cert
from provider_node.tls_front import PeerRegistry, TlsFront

METHOD = "/test.Echo/Echo"


class Echo(grpc.GenericRpcHandler):
    """Echoes the request, prefixed with the department the front verified for this connection."""

    def __init__(self, peers: PeerRegistry) -> None:
        self._peers = peers

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        if details.method != METHOD:
            return None

        def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
            identity = self._peers.lookup(context.peer())
            if identity is None or identity.failure:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")
            return b"ok:" + request

        return grpc.unary_unary_rpc_method_handler(echo)


@pytest.fixture
def fronted(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    ca = create_ca(tmp_path, "test CA")
    server_cert = issue_server_cert(ca, tmp_path)
    issue_client_cert(ca, tmp_path / "clients", "dept-a")
    peers = PeerRegistry()
    limits = [
        ("grpc.max_receive_message_length", 16 << 20),
        ("grpc.max_send_message_length", 16 << 20),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(8), options=limits)
    server.add_generic_rpc_handlers((Echo(peers),))
    internal = server.add_insecure_port("127.0.0.1:0")
    server.start()
    front = TlsFront(
        ("127.0.0.1", 0),
        internal,
        ca_cert=ca.cert_path.read_bytes(),
        server_cert=server_cert.cert_path.read_bytes(),
        server_key=server_cert.key_path.read_bytes(),
        registry=peers,
    )
    front.start()
    yield front.port, tmp_path
    server.stop(0)
    front.stop()


def _call(port: int, pki: Path, payload: bytes) -> bytes:
    creds = grpc.ssl_channel_credentials(
        (pki / "ca.pem").read_bytes(),
        (pki / "clients" / "dept-a.key").read_bytes(),
        (pki / "clients" / "dept-a.pem").read_bytes(),
    )
    options = [
        ("grpc.max_receive_message_length", 16 << 20),
        ("grpc.max_send_message_length", 16 << 20),
    ]
    with grpc.secure_channel(f"localhost:{port}", creds, options=options) as channel:
        echo = channel.unary_unary(METHOD)
        return echo(payload, timeout=30)  # type: ignore[no-any-return]


def test_large_messages_round_trip(fronted: tuple[int, Path]) -> None:
    port, pki = fronted
    payload = bytes(range(256)) * (4 * 4096)  # 4 MiB
    assert _call(port, pki, payload) == b"ok:" + payload


def test_concurrent_clients(fronted: tuple[int, Path]) -> None:
    port, pki = fronted
    with futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda i: _call(port, pki, str(i).encode() * 5000), range(20)))
    assert answers == [b"ok:" + str(i).encode() * 5000 for i in range(20)]


def test_registry_only_trusts_loopback_peers() -> None:
    peers = PeerRegistry()
    from provider_node.tls_front import PeerIdentity

    peers.register(5555, PeerIdentity(b"pem", None))
    assert peers.lookup("ipv4:127.0.0.1:5555") == PeerIdentity(b"pem", None)
    assert peers.lookup("ipv4:10.0.0.1:5555") is None
    assert peers.lookup("ipv4:127.0.0.1:5556") is None
    peers.remove(5555)
    assert peers.lookup("ipv4:127.0.0.1:5555") is None
