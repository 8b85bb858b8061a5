"""A TLS terminator in front of the node's gRPC server: certificate refusals become RPC statuses.

grpcio's Python API either requires a verified client certificate in the handshake (a client
without one, or with one from another CA, sees UNAVAILABLE "Socket closed" and nothing is audited)
or never asks for one. This front asks for a client certificate, accepts whatever is presented so
the handshake completes, and then verifies the chain itself with ``cryptography.x509.verification``.
Every accepted connection is forwarded, byte for byte, over its own plaintext TCP connection to the
real ``grpc.server`` listening on loopback only; the front records which department (or which
precise refusal) stands behind each upstream connection in a ``PeerRegistry``, keyed by the
upstream connection's local address, which is what the servicer sees as ``context.peer()``.
``caller_from_peer`` turns that into a ``Caller`` or an ``UnauthenticatedError`` the servicer can
audit and map to UNAUTHENTICATED.

```
department --mTLS (h2)--> TlsFront (pyOpenSSL, verify-any) --TCP 127.0.0.1--> grpc.server (insecure)
                              |                                                  |
                              +--- PeerRegistry[(127.0.0.1, port)] <--- context.peer()
```

A connection that reaches the upstream port without going through the front has no registry
entry and is treated as unauthenticated. Entries are removed when their connection closes, and a
closed address is quarantined for a while so that a late lookup can never find another
connection's identity.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import ipaddress
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from OpenSSL import SSL, crypto

from provider_node.errors import UnauthenticatedError
from provider_node.node import Caller
from provider_node.pki import (
    CertificateIdentityError,
    certificate_fingerprint,
    department_from_certificate,
)

__all__ = [
    "ClientCertificateVerifier",
    "PeerIdentity",
    "PeerRegistry",
    "TlsFront",
    "TlsMaterial",
    "caller_from_peer",
    "parse_peer",
    "start_tls_front",
]

_log = logging.getLogger(__name__)

Address = tuple[str, int]
_T = TypeVar("_T")


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes for the node's side of mutual TLS. ``server_key`` is secret."""

    ca_cert: bytes
    server_cert: bytes
    server_key: bytes

    @classmethod
    def from_files(cls, ca_cert: Path, server_cert: Path, server_key: Path) -> TlsMaterial:
        return cls(ca_cert.read_bytes(), server_cert.read_bytes(), server_key.read_bytes())

    def __repr__(self) -> str:
        return "TlsMaterial(<server key hidden>)"


NO_CERTIFICATE = (
    "no client certificate: connect with the certificate the provider issued to your department"
)
_NOT_THROUGH_FRONT = (
    "no client certificate: the connection did not come through the node's TLS endpoint"
)
_SOCKET_BUFFER = 256 * 1024
_TLS_READ = 64 * 1024
_BIO_DRAIN = 1024 * 1024


# --------------------------------------------------------------------------------------------
# identity


@dataclass(frozen=True)
class PeerIdentity:
    """Who is behind one client connection: a verified department, or why there is none."""

    department: str | None
    fingerprint: str | None
    failure_reason: str | None

    @classmethod
    def verified(cls, department: str, fingerprint: str) -> PeerIdentity:
        return cls(department, fingerprint, None)

    @classmethod
    def refused(cls, reason: str, fingerprint: str | None = None) -> PeerIdentity:
        return cls(None, fingerprint, reason)


def _utc(moment: _dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class ClientCertificateVerifier:
    """Verifies a presented client chain against the node's CA; never raises for a bad chain."""

    def __init__(
        self,
        ca_pem: bytes,
        *,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self._cas = x509.load_pem_x509_certificates(ca_pem)
        self._store = Store(self._cas)
        self._clock = clock

    @property
    def ca_certificates(self) -> list[x509.Certificate]:
        return list(self._cas)

    def identify(
        self, leaf: x509.Certificate | None, intermediates: list[x509.Certificate]
    ) -> PeerIdentity:
        if leaf is None:
            return PeerIdentity.refused(NO_CERTIFICATE)
        fingerprint = certificate_fingerprint(leaf)
        now = self._clock()
        verifier = PolicyBuilder().store(self._store).time(now).build_client_verifier()
        try:
            verifier.verify(leaf, intermediates)
        except VerificationError as error:
            return PeerIdentity.refused(self._explain(leaf, intermediates, now, error), fingerprint)
        try:
            department = department_from_certificate(leaf)
        except CertificateIdentityError as error:
            return PeerIdentity.refused(
                f"the client certificate names no usable department: {error}", fingerprint
            )
        return PeerIdentity.verified(department, fingerprint)

    def _issued_by_us(self, leaf: x509.Certificate, intermediates: list[x509.Certificate]) -> bool:
        issuers = list(self._cas)
        # One level of presented intermediates is enough to tell "ours" from "foreign".
        issuers += [i for i in intermediates if any(_signed_by(i, ca) for ca in self._cas)]
        return any(_signed_by(leaf, issuer) for issuer in issuers)

    def _explain(
        self,
        leaf: x509.Certificate,
        intermediates: list[x509.Certificate],
        now: _dt.datetime,
        error: VerificationError,
    ) -> str:
        subject = leaf.subject.rfc4514_string()
        if not self._issued_by_us(leaf, intermediates):
            return (
                f"client certificate not issued by this node's CA: {subject!r} was issued by "
                f"{leaf.issuer.rfc4514_string()!r}"
            )
        if now > leaf.not_valid_after_utc:
            until = _utc(leaf.not_valid_after_utc)
            return f"client certificate expired: {subject!r} was valid until {until}"
        if now < leaf.not_valid_before_utc:
            since = _utc(leaf.not_valid_before_utc)
            return f"client certificate not yet valid: {subject!r} is valid from {since}"
        try:
            usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
            return (
                f"client certificate has the wrong usage: {subject!r} is not issued for client "
                "authentication"
            )
        return f"client certificate rejected: {error}"


class PeerRegistry:
    """Thread-safe map from an upstream connection's local address to its ``PeerIdentity``.

    A closed address stays quarantined for ``quarantine`` seconds: ``register`` refuses it (the
    front then opens another upstream connection) and ``lookup`` finds nothing, so an RPC of a
    closed connection is never attributed to a newer connection that reuses its port.
    """

    def __init__(
        self, *, quarantine: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._active: dict[Address, PeerIdentity] = {}
        self._closed: dict[Address, float] = {}
        self._closed_order: deque[tuple[float, Address]] = deque()
        self._quarantine = quarantine
        self._clock = clock

    def _expire(self, now: float) -> None:
        while self._closed_order and self._closed_order[0][0] + self._quarantine <= now:
            closed_at, address = self._closed_order.popleft()
            if self._closed.get(address) == closed_at:
                del self._closed[address]

    def register(self, address: Address, identity: PeerIdentity) -> bool:
        """Record ``identity`` for ``address``; False if the address is in use or quarantined."""
        with self._lock:
            self._expire(self._clock())
            if address in self._active or address in self._closed:
                return False
            self._active[address] = identity
            return True

    def unregister(self, address: Address) -> None:
        with self._lock:
            if self._active.pop(address, None) is not None:
                now = self._clock()
                self._closed[address] = now
                self._closed_order.append((now, address))

    def lookup(self, address: Address) -> PeerIdentity | None:
        with self._lock:
            return self._active.get(address)

    def lookup_peer(self, peer: str) -> PeerIdentity | None:
        """Look up a gRPC peer string such as ``ipv4:127.0.0.1:54321``."""
        address = parse_peer(peer)
        return None if address is None else self.lookup(address)

    def identities(self) -> list[PeerIdentity]:
        with self._lock:
            return list(self._active.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._active)


def parse_peer(peer: str) -> Address | None:
    """``ipv4:127.0.0.1:5`` / ``ipv6:[::1]:5`` / ``ipv6:%5B::1%5D:5`` -> (host, port); else None."""
    scheme, _, rest = peer.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return None
    host, _, port = rest.replace("%5B", "[").replace("%5D", "]").rpartition(":")
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        return None


def caller_from_peer(context: grpc.ServicerContext, registry: PeerRegistry) -> Caller:
    """The verified department behind this RPC; raises ``UnauthenticatedError`` with the reason."""
    identity = registry.lookup_peer(context.peer())
    if identity is None:
        raise UnauthenticatedError(_NOT_THROUGH_FRONT)
    if identity.department is None or identity.fingerprint is None:
        raise UnauthenticatedError(
            identity.failure_reason or NO_CERTIFICATE, cert_fingerprint=identity.fingerprint or ""
        )
    return Caller(department=identity.department, cert_fingerprint=identity.fingerprint)


# --------------------------------------------------------------------------------------------
# TLS


def _accept_any_certificate(
    _connection: SSL.Connection, _certificate: crypto.X509, _errno: int, _depth: int, _ok: int
) -> bool:
    # The chain is verified after the handshake (ClientCertificateVerifier) so that a refusal
    # becomes an UNAUTHENTICATED status with a reason rather than a dropped connection. OpenSSL
    # still checks CertificateVerify: the client has proved it holds the certificate's key.
    return True


def _select_h2(_connection: SSL.Connection, offered: list[bytes]) -> bytes:
    return b"h2" if b"h2" in offered else b""  # b"" aborts the handshake


def _server_context(tls: TlsMaterial, verifier: ClientCertificateVerifier) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    options = SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET | SSL.OP_CIPHER_SERVER_PREFERENCE
    # A renegotiation could swap the client certificate after it was checked.
    options |= getattr(SSL, "OP_NO_RENEGOTIATION", 0)
    context.set_options(options)
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    # TLS 1.2: forward-secret AEAD suites only (TLS 1.3 suites are all of that kind).
    context.set_cipher_list(b"ECDHE+AESGCM:ECDHE+CHACHA20")
    chain = x509.load_pem_x509_certificates(tls.server_cert)
    context.use_certificate(chain[0])
    for extra in chain[1:]:
        context.add_extra_chain_cert(extra)
    key = serialization.load_pem_private_key(tls.server_key, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the node's server key must be an EC or RSA private key")
    context.use_privatekey(key)
    context.check_privatekey()
    context.set_verify(SSL.VERIFY_PEER, _accept_any_certificate)
    for ca in verifier.ca_certificates:
        context.add_client_ca(ca)  # tells clients which certificate to present
    context.set_alpn_select_callback(_select_h2)
    return context


# --------------------------------------------------------------------------------------------
# the front


def _split_address(address: str) -> Address:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def _quiet_shutdown(sock: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def _quiet_sendall(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)


class _Tunnel:
    """One client connection: TLS on the client side, plaintext TCP to the upstream server.

    The pyOpenSSL connection works on memory BIOs, so no OpenSSL call ever blocks; ``_ssl_lock``
    serialises them between the two pump threads, and ``_send_lock`` (taken before ``_ssl_lock``
    is released) keeps TLS records in the order they were produced.
    """

    def __init__(self, front: TlsFront, client: socket.socket, client_address: object) -> None:
        self._front = front
        self._client = client
        self._client_address = client_address
        self._upstream: socket.socket | None = None
        self._registered: Address | None = None
        self._tls = SSL.Connection(front.ssl_context, None)
        self._tls.set_accept_state()
        self._ssl_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pumps_left = 2
        self._aborted = False
        self._linger: threading.Timer | None = None

    # -- TLS (memory BIOs) -------------------------------------------------------------------

    def _outgoing(self) -> bytes:
        chunks = []
        while True:
            try:
                chunks.append(self._tls.bio_read(_BIO_DRAIN))
            except SSL.WantReadError:
                return b"".join(chunks)

    def _with_tls(self, produce: Callable[[], _T]) -> _T:
        """Run ``produce`` under the TLS lock, then send the records it produced, in order."""
        self._ssl_lock.acquire()
        try:
            result = produce()
            out = self._outgoing()
            if out:
                self._send_lock.acquire()
        finally:
            self._ssl_lock.release()
        if out:
            try:
                self._client.sendall(out)
            finally:
                self._send_lock.release()
        return result

    def _decrypt(self, data: bytes) -> tuple[bytes, bool]:
        """Feed client ciphertext; return the plaintext now available and whether TLS closed."""
        self._tls.bio_write(data)
        plaintext: list[bytes] = []
        while True:
            try:
                plaintext.append(self._tls.recv(_TLS_READ))
            except SSL.WantReadError:
                return b"".join(plaintext), False
            except SSL.ZeroReturnError:
                return b"".join(plaintext), True

    def _encrypt(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._tls.send(view) :]

    def _close_notify(self) -> None:
        with contextlib.suppress(SSL.Error):
            self._tls.shutdown()

    # -- life cycle --------------------------------------------------------------------------

    def run(self) -> None:
        """Handshake, identify, connect upstream, then pump both ways (this thread: inbound)."""
        try:
            identity = self._handshake()
            self._upstream = self._connect_upstream(identity)
        except Exception as error:
            _log.info("TLS front: dropped %s before forwarding: %s", self._client_address, error)
            self._close()
            return
        outbound = threading.Thread(target=self._pump_outbound, name="bidui-tls-out", daemon=True)
        outbound.start()
        self._pump_inbound()

    def _handshake(self) -> PeerIdentity:
        self._client.settimeout(self._front.handshake_timeout)
        self._client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                self._tls.do_handshake()
                break
            except SSL.WantReadError:
                out = self._outgoing()
                if out:
                    self._client.sendall(out)
                data = self._client.recv(_SOCKET_BUFFER)
                if not data:
                    raise ConnectionError(
                        "client closed the connection during the handshake"
                    ) from None
                self._tls.bio_write(data)
            except SSL.Error:
                _quiet_sendall(self._client, self._outgoing())  # the alert, if any
                raise
        out = self._outgoing()
        if out:
            self._client.sendall(out)
        self._client.settimeout(None)
        if self._tls.get_alpn_proto_negotiated() != b"h2":
            raise ConnectionError("client did not negotiate ALPN h2 (not a gRPC client)")
        leaf = self._tls.get_peer_certificate(as_cryptography=True)
        presented = self._tls.get_peer_cert_chain(as_cryptography=True) or []
        intermediates = [c for c in presented if leaf is None or c != leaf]
        return self._front.verifier.identify(leaf, intermediates)

    def _connect_upstream(self, identity: PeerIdentity) -> socket.socket:
        host, port = self._front.upstream
        for _ in range(16):
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                upstream.bind((host, 0))
                local: Address = upstream.getsockname()[:2]
                # Registered before the first byte goes upstream, so the server can never see
                # the connection before its identity is known.
                if self._front.registry.register(local, identity):
                    self._registered = local
                    upstream.connect((host, port))
                    return upstream
            except BaseException:
                if self._registered is not None:
                    self._front.registry.unregister(self._registered)
                    self._registered = None
                upstream.close()
                raise
            upstream.close()  # a quarantined local port: try another
        raise ConnectionError("no free local port for the upstream connection")

    def _pump_inbound(self) -> None:
        """Client ciphertext -> plaintext -> upstream."""
        assert self._upstream is not None
        upstream = self._upstream
        try:
            while True:
                data = self._client.recv(_SOCKET_BUFFER)
                if not data:
                    break  # TCP EOF (with or without close_notify)
                plaintext, closed = self._with_tls(functools.partial(self._decrypt, data))
                if plaintext:
                    upstream.sendall(plaintext)
                if closed:
                    break
            _quiet_shutdown(upstream, socket.SHUT_WR)
        except Exception as error:
            self._abort(f"client side: {error!r}")
        finally:
            self._pump_done()

    def _pump_outbound(self) -> None:
        """Upstream plaintext -> TLS records -> client."""
        assert self._upstream is not None
        upstream = self._upstream
        try:
            while True:
                data = upstream.recv(_SOCKET_BUFFER)
                if not data:
                    break
                self._with_tls(functools.partial(self._encrypt, data))
            self._with_tls(self._close_notify)
            _quiet_shutdown(self._client, socket.SHUT_WR)
        except Exception as error:
            self._abort(f"upstream side: {error!r}")
        finally:
            self._pump_done()

    def _pump_done(self) -> None:
        with self._state_lock:
            self._pumps_left -= 1
            last = self._pumps_left == 0
            if not last and self._linger is None and not self._aborted:
                # One direction ended: HTTP/2 has no use for a half-open connection, so the
                # other direction gets a short while to finish, then the tunnel is torn down.
                self._linger = threading.Timer(self._front.linger, self._abort, ("linger",))
                self._linger.daemon = True
                self._linger.start()
        if last:
            self._close()

    def _abort(self, why: str = "stopped") -> None:
        with self._state_lock:
            if self._aborted:
                return
            self._aborted = True
        _log.debug("TLS front: closing %s (%s)", self._client_address, why)
        _quiet_shutdown(self._client, socket.SHUT_RDWR)
        if self._upstream is not None:
            _quiet_shutdown(self._upstream, socket.SHUT_RDWR)

    def _close(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
        if self._registered is not None:
            self._front.registry.unregister(self._registered)
            self._registered = None
        self._client.close()
        if self._upstream is not None:
            self._upstream.close()
        self._front.forget(self)

    def abort(self) -> None:
        self._abort()


class TlsFront:
    """Accepts TLS connections on ``listener`` and tunnels each to ``upstream``. See module doc."""

    def __init__(
        self,
        listener: socket.socket,
        upstream: Address,
        ssl_context: SSL.Context,
        verifier: ClientCertificateVerifier,
        registry: PeerRegistry,
        *,
        handshake_timeout: float = 10.0,
        linger: float = 10.0,
        max_connections: int = 1024,
    ) -> None:
        self._listener = listener
        self.upstream = upstream
        self.ssl_context = ssl_context
        self.verifier = verifier
        self.registry = registry
        self.handshake_timeout = handshake_timeout
        self.linger = linger
        self._max_connections = max_connections
        self._tunnels: set[_Tunnel] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="bidui-tls-accept", daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._tunnels)

    def start(self) -> None:
        self._listener.settimeout(0.2)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                _log.warning("TLS front: accept failed", exc_info=True)
                time.sleep(0.05)
                continue
            client.setblocking(True)
            tunnel = _Tunnel(self, client, address)
            with self._lock:
                full = len(self._tunnels) >= self._max_connections or self._stopping.is_set()
                if not full:
                    self._tunnels.add(tunnel)
            if full:
                _log.warning("TLS front: connection limit reached; refusing %s", address)
                client.close()
                continue
            threading.Thread(target=tunnel.run, name="bidui-tls-in", daemon=True).start()

    def forget(self, tunnel: _Tunnel) -> None:
        with self._lock:
            self._tunnels.discard(tunnel)
            if not self._tunnels:
                self._idle.notify_all()

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting; let open connections end for ``grace`` seconds, then cut them."""
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join()
        self._listener.close()
        with self._lock:
            if grace:
                self._idle.wait_for(lambda: not self._tunnels, timeout=grace)
            tunnels = list(self._tunnels)
        for tunnel in tunnels:
            tunnel.abort()
        with self._lock:
            self._idle.wait_for(lambda: not self._tunnels, timeout=5.0)


def start_tls_front(
    public_address: str,
    upstream_address: str,
    tls_material: TlsMaterial,
    registry: PeerRegistry,
    *,
    handshake_timeout: float = 10.0,
    max_connections: int = 1024,
    clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
) -> tuple[TlsFront, int]:
    """Listen on ``public_address`` (port 0 picks one); tunnel to a loopback ``upstream_address``.

    Returns the started front and the port it listens on.
    """
    upstream = _split_address(upstream_address)
    if ":" in upstream[0] or not ipaddress.ip_address(upstream[0]).is_loopback:
        raise ValueError(
            f"upstream {upstream_address!r} must be an IPv4 loopback address: the upstream "
            "server trusts the front's registry by peer address"
        )
    host, port = _split_address(public_address)
    verifier = ClientCertificateVerifier(tls_material.ca_cert, clock=clock)
    context = _server_context(tls_material, verifier)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=512)
    front = TlsFront(
        listener,
        upstream,
        context,
        verifier,
        registry,
        handshake_timeout=handshake_timeout,
        max_connections=max_connections,
    )
    front.start()
    return front, front.port
