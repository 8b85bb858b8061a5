"""Mutual TLS in front of the gRPC server, so an unauthenticated caller gets UNAUTHENTICATED.

grpcio's Python server can only *require* a client certificate in the TLS handshake (a client
without one, or with one from another CA, sees the connection drop: UNAVAILABLE) or not ask for
one at all. Article 34 and the requesters want a precise answer, and the refusal audited. So the
node terminates TLS here, asking for a client certificate but accepting any in the handshake, and
verifies the chain itself afterwards with ``cryptography.x509.verification``::

    client --TLS (ALPN h2)--> TlsFront --plain HTTP/2 over loopback--> grpc.server (127.0.0.1:0)
                                 |                                          |
                                 +-- PeerRegistry: upstream port -> PeerIdentity <-- context.peer()

The servicers look the caller up by the loopback port of its upstream connection. A connection to
the internal port that did not come through the front has no entry and is unauthenticated.

pyOpenSSL runs in memory-BIO mode: the SSL object is touched only under a per-connection lock, and
every encrypted byte for the client leaves through one writer thread, in the order it was made.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from OpenSSL import SSL

_log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_HANDSHAKE_SECONDS = 10.0


@dataclass(frozen=True)
class PeerIdentity:
    """What the front established about one client connection."""

    certificate_pem: bytes | None  # the leaf certificate presented, if any
    failure: str | None  # why the client is not authenticated; None once verified


class PeerRegistry:
    """Thread-safe map from the upstream connection's loopback port to the client's identity."""

    def __init__(self) -> None:
        self._peers: dict[int, PeerIdentity] = {}
        self._lock = threading.Lock()

    def register(self, port: int, identity: PeerIdentity) -> None:
        with self._lock:
            self._peers[port] = identity

    def remove(self, port: int) -> None:
        with self._lock:
            self._peers.pop(port, None)

    def lookup(self, peer: str) -> PeerIdentity | None:
        """``peer`` as gRPC reports it, e.g. ``ipv4:127.0.0.1:54321``."""
        host, _, port = peer.rpartition(":")
        if host not in ("ipv4:127.0.0.1", "ipv6:[::1]", "ipv6:%5B::1%5D") or not port.isdigit():
            return None
        with self._lock:
            return self._peers.get(int(port))


def verify_client_chain(
    leaf: x509.Certificate | None,
    intermediates: list[x509.Certificate],
    ca: x509.Certificate,
    now: _dt.datetime,
) -> PeerIdentity:
    """Verify ``leaf`` against the node's CA for client authentication (RFC 5280 path rules)."""
    if leaf is None:
        return PeerIdentity(
            None,
            "no client certificate: connect with the certificate the provider issued to your "
            "department",
        )
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    verifier = PolicyBuilder().store(Store([ca])).time(now).build_client_verifier()
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as error:
        return PeerIdentity(
            pem, f"the client certificate does not verify against this node's CA: {error}"
        )
    return PeerIdentity(pem, None)


class TlsFront:
    """Accepts TLS connections on ``address`` and relays them to ``upstream_port`` on loopback."""

    def __init__(
        self,
        address: tuple[str, int],
        upstream_port: int,
        *,
        ca_cert: bytes,
        server_cert: bytes,
        server_key: bytes,
        registry: PeerRegistry,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self._upstream_port = upstream_port
        self._registry = registry
        self._clock = clock
        self._ca = x509.load_pem_x509_certificate(ca_cert)
        self._context = _server_context(server_cert, server_key, self._ca)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(address)
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._connections: set[_Relay] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="bidui-tls-accept", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close every relayed connection."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            relays = list(self._connections)
        for relay in relays:
            relay.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            relay = _Relay(self, client)
            with self._lock:
                self._connections.add(relay)
            threading.Thread(target=relay.run, name="bidui-tls-relay", daemon=True).start()

    def _forget(self, relay: _Relay) -> None:
        with self._lock:
            self._connections.discard(relay)


def _server_context(server_cert: bytes, server_key: bytes, ca: x509.Certificate) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    certificates = x509.load_pem_x509_certificates(server_cert)
    context.use_certificate(certificates[0])
    for extra in certificates[1:]:
        context.add_extra_chain_cert(extra)
    key = serialization.load_pem_private_key(server_key, password=None)
    context.use_privatekey(key)  # type: ignore[arg-type]
    context.check_privatekey()
    # Ask for a client certificate but let the handshake finish whatever comes: the chain is
    # verified afterwards, so a refused caller gets a gRPC status instead of a dropped socket.
    context.set_verify(SSL.VERIFY_PEER, lambda *_args: True)
    context.add_client_ca(ca)
    context.set_alpn_select_callback(
        lambda _conn, offered: b"h2" if b"h2" in offered else SSL.NO_OVERLAPPING_PROTOCOLS
    )
    return context


class _Relay:
    """One client connection: handshake, verification, then bytes both ways until either closes."""

    def __init__(self, front: TlsFront, client: socket.socket) -> None:
        self._front = front
        self._client = client
        self._tls = SSL.Connection(front._context, None)  # memory BIOs
        self._tls.set_accept_state()
        self._lock = threading.Lock()
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._upstream: socket.socket | None = None
        self._port = 0
        self._closed = threading.Event()

    def run(self) -> None:
        writer = threading.Thread(target=self._write_client, name="bidui-tls-write", daemon=True)
        writer.start()
        try:
            if not self._handshake():
                return
            identity = self._identify()
            upstream = socket.create_connection(("127.0.0.1", self._front._upstream_port))
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._upstream = upstream
            self._port = upstream.getsockname()[1]
            # Registered before the first byte goes up: no RPC can arrive without its identity.
            self._front._registry.register(self._port, identity)
            threading.Thread(target=self._pump_down, name="bidui-tls-down", daemon=True).start()
            self._pump_up(self._tls_recv_pending())
        except (OSError, SSL.Error) as error:
            _log.debug("TLS connection ended: %s", error)
        finally:
            self.close()

    def _handshake(self) -> bool:
        self._client.settimeout(_HANDSHAKE_SECONDS)
        while True:
            try:
                with self._lock:
                    self._tls.do_handshake()
                    self._flush_bio()
                self._client.settimeout(None)
                return True
            except SSL.WantReadError:
                with self._lock:
                    self._flush_bio()
                data = self._client.recv(_CHUNK)
                if not data:
                    return False
                with self._lock:
                    self._tls.bio_write(data)

    def _identify(self) -> PeerIdentity:
        leaf = self._tls.get_peer_certificate(as_cryptography=True)
        chain = self._tls.get_peer_cert_chain(as_cryptography=True) or []
        intermediates = [c for c in chain if leaf is None or c != leaf]
        return verify_client_chain(leaf, intermediates, self._front._ca, self._front._clock())

    def _tls_recv_pending(self) -> bytes:
        """Application data that arrived together with the end of the handshake."""
        with self._lock:
            return self._read_plain()

    def _pump_up(self, first: bytes) -> None:
        upstream = self._upstream
        assert upstream is not None
        if first:
            upstream.sendall(first)
        while True:
            data = self._client.recv(_CHUNK)
            if not data:
                return
            with self._lock:
                self._tls.bio_write(data)
                plain = self._read_plain()
                self._flush_bio()
            if plain:
                upstream.sendall(plain)

    def _pump_down(self) -> None:
        upstream = self._upstream
        assert upstream is not None
        try:
            while True:
                data = upstream.recv(_CHUNK)
                if not data:
                    return
                with self._lock:
                    view = memoryview(data)
                    while view:
                        sent = self._tls.send(view[:16384])
                        view = view[sent:]
                    self._flush_bio()
        except (OSError, SSL.Error) as error:
            _log.debug("upstream relay ended: %s", error)
        finally:
            self.close()

    def _read_plain(self) -> bytes:
        """Decrypt all buffered records (caller holds the lock)."""
        parts = []
        while True:
            try:
                parts.append(self._tls.recv(_CHUNK))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                break
        return b"".join(parts)

    def _flush_bio(self) -> None:
        """Queue the encrypted bytes OpenSSL produced, in order (caller holds the lock)."""
        while True:
            try:
                data = self._tls.bio_read(_CHUNK)
            except SSL.WantReadError:
                return
            if not data:
                return
            self._outbox.put(data)

    def _write_client(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self._client.sendall(data)
            except OSError:
                self.close()
                return

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._outbox.put(None)
        if self._port:
            self._front._registry.remove(self._port)
        for sock in (self._upstream, self._client):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._front._forget(self)
