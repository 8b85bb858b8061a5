"""The TLS front: certificate refusals reach the servicer and become UNAUTHENTICATED statuses.

A tiny insecure gRPC server on loopback (health service plus a probe service whose handlers call
``caller_from_peer``) sits behind the front; a throwaway PKI from ``provider_node.pki`` and a
foreign CA provide the certificates.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health as health_lib
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytest.importorskip("OpenSSL", reason="pyOpenSSL is needed for the TLS front")

from provider_node.errors import UnauthenticatedError
from provider_node.pki import (
    certificate_fingerprint,
    create_ca,
    issue_client_cert,
    issue_server_cert,
)
from provider_node.tls_front import (
    ClientCertificateVerifier,
    PeerIdentity,
    PeerRegistry,
    TlsFront,
    TlsMaterial,
    caller_from_peer,
    parse_peer,
    start_tls_front,
)

DEPARTMENT = "luzhou-civil-affairs"
MAX_MESSAGE = 16 * 1024 * 1024
NOW = dt.datetime.now(dt.UTC)


@dataclass
class Pair:
    cert: bytes
    key: bytes


@dataclass
class Setup:
    ca_pem: bytes
    good: Pair
    foreign: Pair
    expired: Pair
    wrong_usage: Pair
    front: TlsFront
    front_port: int
    upstream_port: int
    registry: PeerRegistry
    refusals: list[str] = field(default_factory=list)

    def channel(self, pair: Pair | None, *, port: int | None = None) -> grpc.Channel:
        kwargs = {} if pair is None else {"private_key": pair.key, "certificate_chain": pair.cert}
        credentials = grpc.ssl_channel_credentials(self.ca_pem, **kwargs)
        return grpc.secure_channel(
            f"localhost:{port or self.front_port}",
            credentials,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )


def _pair(issued_cert: Path, issued_key: Path) -> Pair:
    return Pair(issued_cert.read_bytes(), issued_key.read_bytes())


def _probe_handler(registry: PeerRegistry, refusals: list[str]) -> grpc.GenericRpcHandler:
    def checked(respond: Callable[[bytes, str], bytes]) -> Callable[..., bytes]:
        def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                caller = caller_from_peer(context, registry)
            except UnauthenticatedError as refusal:
                refusals.append(str(refusal))  # where the node would audit the refusal
                context.abort(grpc.StatusCode.UNAUTHENTICATED, str(refusal))
            return respond(request, caller.department)

        return handler

    return grpc.method_handlers_generic_handler(
        "test.Probe",
        {
            "Who": grpc.unary_unary_rpc_method_handler(
                checked(lambda _request, department: department.encode())
            ),
            "Echo": grpc.unary_unary_rpc_method_handler(checked(lambda request, _dep: request)),
        },
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("tls-front")
    # The CA is backdated so that an already expired client certificate can come from it.
    ca = create_ca(root / "ca", "test node CA", now=NOW - dt.timedelta(days=3 * 365))
    server = issue_server_cert(ca, root / "server")
    good = issue_client_cert(ca, root / "clients", DEPARTMENT)
    expired = issue_client_cert(
        ca, root / "expired", DEPARTMENT, now=NOW - dt.timedelta(days=2 * 365)
    )
    foreign_ca = create_ca(root / "foreign-ca", "someone else's CA")
    foreign = issue_client_cert(foreign_ca, root / "foreign", DEPARTMENT)

    registry = PeerRegistry()
    refusals: list[str] = []
    upstream = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 0),
        ],
    )
    upstream.add_generic_rpc_handlers((_probe_handler(registry, refusals),))
    health = health_lib.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, upstream)
    upstream_port = upstream.add_insecure_port("127.0.0.1:0")
    upstream.start()

    material = TlsMaterial(
        ca.cert_path.read_bytes(), server.cert_path.read_bytes(), server.key_path.read_bytes()
    )
    front, port = start_tls_front("127.0.0.1:0", f"127.0.0.1:{upstream_port}", material, registry)
    try:
        yield Setup(
            ca_pem=ca.cert_path.read_bytes(),
            good=_pair(good.cert_path, good.key_path),
            foreign=_pair(foreign.cert_path, foreign.key_path),
            expired=_pair(expired.cert_path, expired.key_path),
            # A server certificate from the right CA, presented as a client certificate.
            wrong_usage=_pair(server.cert_path, server.key_path),
            front=front,
            front_port=port,
            upstream_port=upstream_port,
            registry=registry,
            refusals=refusals,
        )
    finally:
        front.stop(grace=1.0)
        upstream.stop(None).wait()


def _call(channel: grpc.Channel, method: str, payload: bytes = b"", timeout: float = 10.0) -> bytes:
    probe: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(f"/test.Probe/{method}")
    return probe(payload, timeout=timeout)


def _status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    assert isinstance(error, grpc.Call)
    return error.code(), error.details() or ""


def _refused(setup: Setup, pair: Pair | None) -> tuple[grpc.StatusCode, str]:
    with setup.channel(pair) as channel, pytest.raises(grpc.RpcError) as raised:
        _call(channel, "Who")
    return _status(raised.value)


def test_a_certificate_from_the_node_ca_names_the_department(setup: Setup) -> None:
    with setup.channel(setup.good) as channel:
        assert _call(channel, "Who") == DEPARTMENT.encode()
        # The standard health service works through the front too.
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest())  # type: ignore[attr-defined]
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_registry_records_the_certificate_fingerprint(setup: Setup) -> None:
    with setup.channel(setup.good) as channel:
        _call(channel, "Who")
        identities = setup.registry.identities()
    fingerprint = certificate_fingerprint(setup.good.cert)
    assert PeerIdentity.verified(DEPARTMENT, fingerprint) in identities


def test_no_client_certificate_is_unauthenticated_and_says_so(setup: Setup) -> None:
    code, details = _refused(setup, None)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert details.startswith("no client certificate")
    assert setup.refusals[-1] == details  # the servicer saw the refusal (to audit it)


def test_a_certificate_from_another_ca_is_unauthenticated(setup: Setup) -> None:
    code, details = _refused(setup, setup.foreign)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert details.startswith("client certificate not issued by this node's CA")
    assert "someone else's CA" in details


def test_an_expired_certificate_is_unauthenticated(setup: Setup) -> None:
    code, details = _refused(setup, setup.expired)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert details.startswith("client certificate expired")


def test_a_server_certificate_is_not_a_client_certificate(setup: Setup) -> None:
    code, details = _refused(setup, setup.wrong_usage)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert details.startswith("client certificate has the wrong usage")


def test_bypassing_the_front_is_unauthenticated(setup: Setup) -> None:
    with (
        grpc.insecure_channel(f"127.0.0.1:{setup.upstream_port}") as channel,
        pytest.raises(grpc.RpcError) as raised,
    ):
        _call(channel, "Who")
    code, details = _status(raised.value)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "did not come through the node's TLS endpoint" in details


def test_a_4_mb_message_round_trips(setup: Setup) -> None:
    payload = bytes(range(256)) * (4 * 1024 * 1024 // 256) + b"tail"
    with setup.channel(setup.good) as channel:
        assert _call(channel, "Echo", payload, timeout=30.0) == payload


def test_twenty_concurrent_clients(setup: Setup) -> None:
    barrier = threading.Barrier(20)

    def client(number: int) -> list[bytes]:
        payload = number.to_bytes(4, "big") * 64 * 1024  # 256 KiB, distinct per client
        with setup.channel(setup.good) as channel:
            barrier.wait(timeout=10)
            return [_call(channel, "Echo", payload, timeout=30.0) for _ in range(5)] + [
                _call(channel, "Who")
            ]

    with futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(client, range(20)))
    for number, replies in enumerate(results):
        assert replies[:5] == [number.to_bytes(4, "big") * 64 * 1024] * 5
        assert replies[5] == DEPARTMENT.encode()


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_closed_connections_leave_the_registry(setup: Setup) -> None:
    assert _wait_for(lambda: setup.front.connection_count == 0)
    with setup.channel(setup.good) as channel:
        _call(channel, "Who")
        assert len(setup.registry) == 1
    assert _wait_for(lambda: len(setup.registry) == 0 and setup.front.connection_count == 0)


def test_garbage_and_plain_http2_are_dropped_and_the_front_keeps_serving(setup: Setup) -> None:
    for junk in (b"\x16\x03\x01\x00\x05hello", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b""):
        with socket.create_connection(("127.0.0.1", setup.front_port), timeout=5) as raw:
            raw.sendall(junk)
            raw.shutdown(socket.SHUT_WR)
            assert raw.recv(1024) is not None  # an alert or EOF, not a hang
    with setup.channel(setup.good) as channel:
        assert _call(channel, "Who") == DEPARTMENT.encode()


def test_stop_closes_open_connections(setup: Setup, tmp_path: Path) -> None:
    material_dir = tmp_path / "pki"
    ca = create_ca(material_dir, "stop test CA")
    server = issue_server_cert(ca, material_dir)
    client = issue_client_cert(ca, material_dir / "c", DEPARTMENT)
    registry = PeerRegistry()
    material = TlsMaterial(
        ca.cert_path.read_bytes(), server.cert_path.read_bytes(), server.key_path.read_bytes()
    )
    front, port = start_tls_front(
        "127.0.0.1:0", f"127.0.0.1:{setup.upstream_port}", material, registry
    )
    pair = _pair(client.cert_path, client.key_path)
    with grpc.secure_channel(
        f"localhost:{port}",
        grpc.ssl_channel_credentials(
            ca.cert_path.read_bytes(), private_key=pair.key, certificate_chain=pair.cert
        ),
    ) as channel:
        # The upstream server uses the module's registry, so this caller is unknown there.
        with pytest.raises(grpc.RpcError) as raised:
            _call(channel, "Who")
        assert _status(raised.value)[0] is grpc.StatusCode.UNAUTHENTICATED
        assert len(registry) == 1
        front.stop(grace=0.5)
        assert len(registry) == 0 and front.connection_count == 0
        with pytest.raises(grpc.RpcError) as after:
            _call(channel, "Who", timeout=2.0)
        assert _status(after.value)[0] in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )


def test_the_upstream_must_be_loopback(tmp_path: Path) -> None:
    ca = create_ca(tmp_path, "CA")
    server = issue_server_cert(ca, tmp_path)
    material = TlsMaterial(
        ca.cert_path.read_bytes(), server.cert_path.read_bytes(), server.key_path.read_bytes()
    )
    with pytest.raises(ValueError, match="loopback"):
        start_tls_front("127.0.0.1:0", "10.0.0.1:5000", material, PeerRegistry())


def _raw_tls(
    setup: Setup, alpn: list[str], *, maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
) -> ssl.SSLSocket:
    context = ssl.create_default_context(cadata=setup.ca_pem.decode())
    context.maximum_version = maximum
    context.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", setup.front_port), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def test_only_h2_over_tls_1_2_or_later_is_spoken(setup: Setup) -> None:
    with _raw_tls(setup, ["h2"]) as tls13:
        assert tls13.version() == "TLSv1.3" and tls13.selected_alpn_protocol() == "h2"
    with _raw_tls(setup, ["h2"], maximum=ssl.TLSVersion.TLSv1_2) as tls12:
        assert tls12.version() == "TLSv1.2" and tls12.selected_alpn_protocol() == "h2"
    with pytest.raises(ssl.SSLError, match="alert"):  # refused in the handshake
        _raw_tls(setup, ["http/1.1"]).close()


# -- pieces ------------------------------------------------------------------------------------


def test_parse_peer() -> None:
    assert parse_peer("ipv4:127.0.0.1:54321") == ("127.0.0.1", 54321)
    assert parse_peer("ipv6:[::1]:80") == ("::1", 80)
    assert parse_peer("ipv6:%5B::1%5D:80") == ("::1", 80)
    assert parse_peer("unix:/tmp/sock") is None
    assert parse_peer("ipv4:nonsense") is None


def test_a_closed_address_is_quarantined() -> None:
    now = [0.0]
    registry = PeerRegistry(quarantine=60.0, clock=lambda: now[0])
    who = PeerIdentity.verified(DEPARTMENT, "ab" * 32)
    address = ("127.0.0.1", 40000)
    assert registry.register(address, who)
    assert not registry.register(address, who)  # in use
    registry.unregister(address)
    assert registry.lookup(address) is None
    now[0] = 59.0
    assert not registry.register(address, who)  # quarantined
    now[0] = 61.0
    assert registry.register(address, who)


def test_the_verifier_explains_each_refusal(setup: Setup) -> None:
    from cryptography import x509

    verifier = ClientCertificateVerifier(setup.ca_pem)
    load = x509.load_pem_x509_certificate
    good = verifier.identify(load(setup.good.cert), [])
    assert good.department == DEPARTMENT and good.failure_reason is None
    assert verifier.identify(None, []).failure_reason is not None
    foreign = verifier.identify(load(setup.foreign.cert), [])
    assert foreign.department is None
    assert foreign.fingerprint == certificate_fingerprint(setup.foreign.cert)
    assert (foreign.failure_reason or "").startswith("client certificate not issued")
    # A foreign leaf with our CA presented as its "intermediate" is still foreign.
    ours = load(setup.ca_pem)
    assert (verifier.identify(load(setup.foreign.cert), [ours]).failure_reason or "").startswith(
        "client certificate not issued"
    )
